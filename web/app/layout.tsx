// The frame around every view: top bar, status banner, live connection (socket.io) and notifications.
import type { Metadata } from 'next';
import { Suspense, type ReactNode } from 'react';
import { LiveProvider } from '../components/live/LiveProvider.tsx';
import { Notifier } from '../components/Notifier.tsx';
import { StatusBanner } from '../components/StatusBanner.tsx';
import { TopBar } from '../components/TopBar.tsx';
import './globals.css';

// Rendered per request: the CSP nonce (web/server/guard.ts) differs per response, and Next can only put it on
// the inline scripts of a page it renders now (a prerendered page's scripts would carry none and be blocked).
export const dynamic = 'force-dynamic';

export const metadata: Metadata = {
  title: 'pinwatch',
  description: 'pin/PTE divergence: pages a device DMAs into that the process no longer maps',
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        {/* useSearchParams (?src=) is read on the client: the boundary lets the server render the frame without it. */}
        <Suspense fallback={null}>
          <LiveProvider>
            <TopBar />
            <StatusBanner />
            <Notifier />
            <main className="page">{children}</main>
          </LiveProvider>
        </Suspense>
      </body>
    </html>
  );
}
