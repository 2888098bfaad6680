export * from './kernel.ts';
export * from './events.ts';
export * from './anomalies.ts';
export * from './pins.ts';
export * from './session.ts';
export * from './protocol.ts';
export * from './tables.ts';
export * from './reliability.ts';
