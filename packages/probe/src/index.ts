export { probe } from './report.js';
export type { GpuReport, ProbeReport } from './report.js';
export { featuresOf, kernelImageFor, peakRatesFor } from './features.js';
export type { GpuFeatures, PeakRates } from './features.js';
export { formatHardwareInfo, main, printHardwareInfo } from './print.js';
export { smokeTest } from './smoke.js';
export type { SmokeTestResult } from './smoke.js';
