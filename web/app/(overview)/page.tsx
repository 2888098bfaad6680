// Overview (/): the traced host and session, probes attached and left out, live event rates, anomalies by rule.
import { OverviewView } from './OverviewView.tsx';

export default function OverviewPage() {
  return <OverviewView />;
}
