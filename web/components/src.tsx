'use client';
// Which data source a page shows travels in the URL (?src=r1 for a recording opened in the browser; absent for
// the server's main source), so every link and API call carries it and a page can be shared as is.
import Link from 'next/link';
import { useSearchParams } from 'next/navigation';
import type { ComponentProps } from 'react';

export function useSrc(): string {
  return useSearchParams().get('src') ?? 'main';
}

/** path + query, with src added when it is not the main source. */
export function withSrc(path: string, src: string, params: Record<string, string | number | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  if (src && src !== 'main') q.set('src', src);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export function SrcLink({ href, params, ...rest }: Omit<ComponentProps<typeof Link>, 'href'> & { href: string; params?: Record<string, string | number | undefined> }) {
  const src = useSrc();
  return <Link href={withSrc(href, src, params)} {...rest} />;
}
