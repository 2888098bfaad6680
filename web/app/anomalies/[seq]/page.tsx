// Anomaly detail (/anomalies/:seq): the explanation (mechanism, why it corrupts data, source thread), the
// evidence (events and pagemap reads) and the page's timeline.
import { AnomalyDetailView } from '../AnomalyDetailView.tsx';

export default async function AnomalyDetailPage({ params }: { params: Promise<{ seq: string }> }) {
  const { seq } = await params;
  return <AnomalyDetailView seq={Number(seq)} />;
}
