/** CUDA candidates of the 'tensor' op family (native/ops/tensor.cu). */
export {};
