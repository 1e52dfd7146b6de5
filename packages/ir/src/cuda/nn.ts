/** CUDA candidates of the 'nn' op family (native/ops/nn.cu). */
export {};
