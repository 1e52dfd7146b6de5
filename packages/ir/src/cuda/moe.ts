/** CUDA candidates of the 'moe' op family (native/ops/moe.cu). */
export {};
