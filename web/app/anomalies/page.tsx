// Anomalies (/anomalies): the live feed, newest first, filterable by rule, severity, pid/comm and confirmation.
import { AnomalyFeed } from './AnomalyFeed.tsx';

export default function AnomaliesPage() {
  return <AnomalyFeed />;
}
