// The shadow model of page ownership and DMA buffers (see shadow-model.ts for the timing rules).
export * from './shadow-model.ts';
export * from './effects.ts';
export * from './pin-record.ts';
export * from './process.ts';
export * from './maps.ts';
export * from './ranges.ts';
