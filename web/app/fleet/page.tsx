// Fleet (/fleet): every pinwatch host Prometheus scrapes, with its health, pins and open incidents, a link to
// its own dashboard, and the alerts Alertmanager delivered here. Needs pinwatch serve --prometheus URL.
import { FleetView } from './FleetView.tsx';

export default function FleetPage() {
  return <FleetView />;
}
