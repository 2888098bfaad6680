// Page timeline (/timeline?pid=&addr=): everything that touched one pinned page, drawn on a time axis.
import { TimelineView } from './TimelineView.tsx';

export default function TimelinePage() {
  return <TimelineView />;
}
