// Data-parallel training of a small GPT, one process per GPU (issue 22): every rank reads its own
// shard of the batches, averages its gradients with the others inside the compiled step (bucketed
// NCCL all-reduces in the step's CUDA graph), and rank 0 alone prints, logs and checkpoints.
//   deepwell launch --gpus 2 examples/gpt2/ddp.mjs [steps=200] [batch per rank=8] [dir]
//   torchrun --nproc-per-node 2 --no-python node examples/gpt2/ddp.mjs     (or srun node …)
//   node examples/gpt2/ddp.mjs 20 4                                       (one process: a world of one)
// DEEPWELL_ZERO=1 in the environment shards the AdamW moments across the ranks (ZeRO-1).
// A run killed part-way resumes from the newest checkpoint in [dir] (default runs/ddp) with the same
// command, on the same or another number of GPUs.
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { TokenLoader, Trainer, initDistributed, markovShard } from '@deepwell/trainer';

const [steps, batch] = [Number(process.argv[2] ?? 200), Number(process.argv[3] ?? 8)];
const dir = process.argv[4] ?? 'runs/ddp';
const dist = await initDistributed();
try {
  const corpus = new MarkovCorpus({ vocab: 256, seed: 1 });
  const train = new TokenLoader({ shards: [markovShard(corpus, 1_000_000, 'train')], batchSize: batch, seqLen: 128, seed: 1, rank: dist.rank, worldSize: dist.worldSize });
  const trainer = new Trainer({
    model: new GPT({ vocabSize: 256, blockSize: 128, nLayer: 4, nHead: 4, nEmbd: 256 }),
    train,
    steps,
    optimizer: { lr: 1e-3 },
    clipGradNorm: 1,
    checkpoint: { dir, every: Math.max(1, Math.floor(steps / 4)) },
    distributed: { communicator: dist.communicator, zero: process.env.DEEPWELL_ZERO === '1' },
  });
  const r = trainer.fit({ resume: 'auto' });
  if (dist.rank === 0) {
    console.log(`rank 0 of ${dist.worldSize} on ${trainer.device}: loss ${r.losses[0].loss.toFixed(3)} -> ${r.losses.at(-1).loss.toFixed(3)} (the data's floor ${corpus.entropyRate().toFixed(3)}), ${Math.round(r.tokensPerSecond)} tokens/s over every rank`);
  }
} finally {
  dist.communicator?.destroy();
}
