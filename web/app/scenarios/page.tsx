// Scenarios (/scenarios): run one of the project's own reproducers in a terminal and watch its anomalies appear.
import { ScenariosView } from './ScenariosView.tsx';

export default function ScenariosPage() {
  return <ScenariosView />;
}
