// Rule explanations mention kernel functions, flags and paths: `backticked` spans, snake_case identifiers
// (do_wp_page, pin_user_pages*), calls, /proc paths and FOLL_/MADV_… constants render as code.
import { Fragment } from 'react';

const TOKEN =
  /(`[^`]+`|\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b\*?(?:\(\))?|\b[a-z][a-z0-9]*\(\)|\/proc\/[A-Za-z0-9_/]+|\b(?:FOLL|MADV|MAP|PG|FAULT_FLAG|UFFDIO|IORING|VFIO|CLONE|MREMAP)_[A-Z0-9_]+\b)/g;

export function RichText({ text }: { text: string }) {
  const parts = text.split(TOKEN);
  return (
    <>
      {parts.map((p, i) =>
        i % 2 === 1 ? <code key={i}>{p.startsWith('`') ? p.slice(1, -1) : p}</code> : <Fragment key={i}>{p}</Fragment>,
      )}
    </>
  );
}
