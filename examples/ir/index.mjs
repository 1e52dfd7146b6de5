// examples/ir: capture a model into the IR, print its graph, differentiate it into a training
// step, and ask dryrun what the step costs — all before anything runs.
//   node index.mjs                 a tiny GPT: prints the forward IR and the dryrun
//   node index.mjs gpt2-small 16   GPT-2 small at batch 16 (dryrun only; the IR is long)
import { capture, dryrun, formatDryrun, trainingStep } from '@deepwell/ir';
import { GPT } from '@deepwell/nn';

const preset = process.argv[2] ?? 'tiny';
const B = Number(process.argv[3] ?? 2);
const model = new GPT(preset);
const T = model.config.blockSize;
const forward = capture(model, { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
if (preset === 'tiny') console.log(forward.toText(), '\n');
const step = trainingStep(forward);
console.log(`${preset}: ${model.parameterCount().toLocaleString('en')} parameters; forward ${forward.nodes.length} nodes, training step ${step.nodes.length} nodes`);
console.log(formatDryrun(dryrun(step)));
