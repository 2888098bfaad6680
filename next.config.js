// Next.js configuration of the pinwatch dashboard. The Next project directory is web/ (App Router in web/app);
// web/next.config.js re-exports this file so the configuration lives at the repository root. The app is served
// by the custom server in web/server/serve.ts, which also owns /api, /metrics and socket.io.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PHASE_DEVELOPMENT_SERVER } from 'next/constants.js';

const repoRoot = dirname(fileURLToPath(import.meta.url));

/** @type {import('next').NextConfig} */
const base = {
  reactStrictMode: true,
  poweredByHeader: false,
  // The UI imports the shared types and kernel constants from ../schema (outside web/): compile them too.
  experimental: { externalDir: true },
  outputFileTracingRoot: repoRoot,
  // Types are checked by `npm run typecheck` over the whole repo (web included); ESLint is not a dependency.
  typescript: { ignoreBuildErrors: true },
  eslint: { ignoreDuringBuilds: true },
  devIndicators: false,
  // Server-only packages never enter a bundle; the custom server loads them through tsx.
  serverExternalPackages: ['better-sqlite3', 'node-pty'],
};

/**
 * `pinwatch serve --dev` (next dev) writes to web/.next/dev so it never clobbers the production build in
 * web/.next that `pinwatch serve` uses; `next build` clears both.
 * @param {string} phase
 */
export default function config(phase) {
  return phase === PHASE_DEVELOPMENT_SERVER ? { ...base, distDir: '.next/dev' } : base;
}
