'use client';
// An xterm.js terminal showing a scenario's pty output (node-pty on the server). Output only: the reproducers
// take no input; the page has a stop button instead of a keyboard.
import { useEffect, useImperativeHandle, useRef, type Ref } from 'react';
import '@xterm/xterm/css/xterm.css';

export interface TerminalHandle {
  write(data: string): void;
  clear(): void;
  size(): { cols: number; rows: number };
}

export function Terminal({ ref, onResize }: { ref: Ref<TerminalHandle>; onResize?: (cols: number, rows: number) => void }) {
  const host = useRef<HTMLDivElement>(null);
  const term = useRef<import('@xterm/xterm').Terminal | null>(null);
  const pending = useRef<string[]>([]);
  const resizeCb = useRef(onResize);
  resizeCb.current = onResize;

  useImperativeHandle(ref, () => ({
    write(data) {
      if (term.current) term.current.write(data);
      else pending.current.push(data);
    },
    clear() {
      pending.current = [];
      term.current?.reset();
    },
    size() {
      return { cols: term.current?.cols ?? 120, rows: term.current?.rows ?? 30 };
    },
  }));

  useEffect(() => {
    let disposed = false;
    let cleanup = () => {};
    // xterm touches `window` when imported: load it in the browser only.
    void Promise.all([import('@xterm/xterm'), import('@xterm/addon-fit')]).then(([{ Terminal: XTerm }, { FitAddon }]) => {
      if (disposed || !host.current) return;
      const t = new XTerm({
        convertEol: true,
        disableStdin: true,
        cursorBlink: false,
        fontFamily: "ui-monospace, 'DejaVu Sans Mono', monospace",
        fontSize: 12,
        scrollback: 5000,
        theme: { background: '#000000', foreground: '#d5dbe3' },
      });
      const fit = new FitAddon();
      t.loadAddon(fit);
      t.open(host.current);
      fit.fit();
      term.current = t;
      for (const d of pending.current) t.write(d);
      pending.current = [];
      const ro = new ResizeObserver(() => {
        fit.fit();
        resizeCb.current?.(t.cols, t.rows);
      });
      ro.observe(host.current);
      cleanup = () => {
        ro.disconnect();
        t.dispose();
        term.current = null;
      };
    });
    return () => {
      disposed = true;
      cleanup();
    };
  }, []);

  return <div className="term-host" ref={host} data-testid="terminal" />;
}
