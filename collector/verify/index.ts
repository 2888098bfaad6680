// Pagemap verification: the /proc/PID/pagemap reader, the verifier that schedules reads and classifies
// divergence, the clock/timer seams, and test doubles.
export * from './pagemap.ts';
export * from './verifier.ts';
export * from './time.ts';
export * from './fakes.ts';
