#!/usr/bin/env bash
# On the multi-GPU host: issue 22's "must show" for data parallelism, GPT-2 124M (examples/gpt2/
# ddp-bench.mjs under `deepwell launch`, examples/gpt2/ddp_torch.py under torchrun), by part, into $OUT.
#   OUT=$OUT bash scripts/ddp-check.sh [scaling] [curve] [memory] [kill] [stall]
#   scaling  for W in 1 2 4 (those the GPUs allow; DDP_WORLDS sets them): Deepwell on W GPUs, then
#            PyTorch DDP (TORCH_MODE, default compile) on the same GPUs, data and initial weights,
#            alternating; the same batch per GPU at every W (weak scaling). Then the table: tokens/s,
#            tokens/s per GPU, efficiency against W = 1 (target >= 0.90 at 4), Deepwell / torch
#            (target >= 1.0), median step, peak memory (scaling.json beside it)
#   curve    one GPU with DDP_ACCUMULATE=W against W GPUs: the same global batches (W · B samples a
#            step, the same samples); the two loss series step by step (the largest |difference|,
#            the 10-step means). DDP_CURVE_TORCH=1 adds PyTorch DDP on W GPUs as a third series
#   memory   W GPUs without and with ZeRO-1 (DDP_ZERO=1): each rank's peak (the allocator's), dryrun's
#            planned bytes and optimizer state, and nvidia-smi's per-process memory sampled every second
#   kill     W GPUs, a checkpoint every DDP_KILL_EVERY (20) steps; after step DDP_KILL_AT (50) of
#            DDP_KILL_STEPS (100), kill -9 rank DDP_KILL_RANK (1); checks that the launcher exits
#            non-zero within the NCCL timeout (DDP_NCCL_TIMEOUT_MS, 120000 here) naming that rank,
#            then runs the same command again: it resumes from the newest checkpoint and finishes;
#            the steps run twice (after the checkpoint, before the kill) are compared bit for bit
#   stall    (not a default part) as kill, but SIGSTOP: no process dies, so only the other ranks'
#            NCCL wait can end the job (TIMEOUT after DDP_NCCL_TIMEOUT_MS, 60000 here)
# W is the GPUs present, at most 4 (DDP_GPUS sets it). Settings: DDP_STEPS (scaling, 100), DDP_BATCH
# (per GPU, 16), DDP_CURVE_STEPS (200), DDP_MEMORY_STEPS (30), TORCH_MODE (compile | eager), DDP_RUNS
# (the runs' folders, default /tmp/ddp-check: data, initial weights and checkpoints stay there; the
# logs and step logs come into $OUT). GPT_CONFIG as ddp-bench.mjs takes it (default gpt2-small).
# Rough times on H100 / H200 (GPT-2 124M, B 16): a Deepwell run starts in about 20-30 s (data, compile,
# graph capture), a torch.compile one in about 60 s (less once its cache is warm); scaling about 5
# min, curve 1.5, memory 1, kill 2-3, stall 2-3.
# Needs .device/ from scripts/device-pack.sh, python3 with torch (a CUDA build), numpy, safetensors.
# NCCL_NVLS_ENABLE=0 (device-lib.sh exports it).
set -uo pipefail
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(scaling curve memory kill)
for p in "${parts[@]}"; do
  case $p in scaling | curve | memory | kill | stall) ;; *) echo "ddp-check.sh: unknown part '$p' (scaling, curve, memory, kill, stall)"; exit 2 ;; esac
done
source "$(dirname "$0")/device-lib.sh"
device_begin ddp-check

GPUS=${DDP_GPUS:-$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')}
[ "$GPUS" -gt 4 ] 2>/dev/null && [ -z "${DDP_GPUS:-}" ] && GPUS=4
[ "$GPUS" -ge 1 ] 2>/dev/null || { echo "ddp-check.sh: no GPU found (nvidia-smi -L); DDP_GPUS=1 GPT2_ALLOW_CPU=1 GPT_CONFIG=tiny tries the script on the CPU"; GPUS=1; }
WORLDS=${DDP_WORLDS:-$(for w in 1 2 4; do [ "$w" -le "$GPUS" ] && echo -n "$w "; done)}
STEPS=${DDP_STEPS:-100}
BATCH=${DDP_BATCH:-16}
MODE=${TORCH_MODE:-compile}
RUNS=${DDP_RUNS:-/tmp/ddp-check}
DW="node packages/cli/bin/deepwell.mjs"
TORCHRUN="python3 -m torch.distributed.run --standalone"
BENCH=examples/gpt2/ddp-bench.mjs
TORCHREF=examples/gpt2/ddp_torch.py
echo "GPUs used: $GPUS; worlds for scaling: $WORLDS; batch $BATCH per GPU; torch mode $MODE; runs in $RUNS; GPT_CONFIG ${GPT_CONFIG:-gpt2-small}"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'nccl', torch.cuda.nccl.version() if torch.cuda.is_available() else None)" 2>&1 | tail -1
mkdir -p "$RUNS"

# The JSON lines (summary, memory) of a run's output, without the launcher's "[rank] " prefix.
lines() { sed -E 's/^\[[0-9]+\] //' "$@" | grep -E '^\{"event": ?"(summary|memory)"'; }
# The last step number in a Trainer log (0 when none yet).
last_step() { local s; s=$(grep -F '"event":"step"' "$1" 2>/dev/null | tail -1 | grep -oE '"step":[0-9]+' | cut -d: -f2); echo "${s:-0}"; }
# nvidia-smi's per-process memory (MiB) every second into $1, until killed.
sample_gpu_memory() { while :; do nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null; sleep 1; done > "$1"; }

# The reports (node, no packages): report <scaling|curve|memory|kill> args…
report() {
  node --input-type=module - "$@" <<'EOF'
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
const [what, ...args] = process.argv.slice(2);
const text = (f) => (existsSync(f) ? readFileSync(f, 'utf8') : '');
const records = (f) => text(f).split('\n').map((l) => l.replace(/^\[\d+\] /, '')).filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l); } catch { return null; } }).filter(Boolean);
const summary = (f) => records(f).filter((e) => e.event === 'summary').at(-1) ?? null;
const memories = (f) => records(f).filter((e) => e.event === 'memory' && e.rank !== undefined);
const gib = (b) => (b == null ? '-' : (b / 2 ** 30).toFixed(2));
const int = (x) => (x == null ? '-' : Math.round(x).toLocaleString('en'));
const fix = (x, d = 3) => (x == null || !Number.isFinite(x) ? '-' : x.toFixed(d));
const steps = (f) => records(f).filter((e) => e.event === 'step');
if (what === 'scaling') {
  const [out, mode, ...worlds] = args;
  const rows = worlds.map(Number).map((w) => {
    const dw = summary(`${out}/scaling-deepwell-w${w}.log`), th = summary(`${out}/scaling-torch-w${w}.log`);
    const peak = (f) => Math.max(...memories(f).map((m) => m.peakMemoryBytes ?? 0), 0) || null;
    return { world: w, deepwell: dw, torch: th, deepwellPeak: peak(`${out}/scaling-deepwell-w${w}.log`), torchPeak: peak(`${out}/scaling-torch-w${w}.log`) };
  });
  const base = (k) => rows.find((r) => r.world === 1)?.[k]?.tokensPerSecondPerGpu ?? null;
  console.log(`| GPUs | Deepwell tokens/s | per GPU | efficiency | torch DDP (${mode}) tokens/s | per GPU | efficiency | Deepwell / torch | median step ms (Deepwell / torch) | peak GiB, largest rank (Deepwell / torch) |`);
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    const d = r.deepwell, t = r.torch;
    r.efficiency = { deepwell: d && base('deepwell') ? d.tokensPerSecondPerGpu / base('deepwell') : null, torch: t && base('torch') ? t.tokensPerSecondPerGpu / base('torch') : null };
    r.ratio = d && t ? d.tokensPerSecond / t.tokensPerSecond : null;
    console.log(`| ${r.world} | ${int(d?.tokensPerSecond)} | ${int(d?.tokensPerSecondPerGpu)} | ${fix(r.efficiency.deepwell)} | ${int(t?.tokensPerSecond)} | ${int(t?.tokensPerSecondPerGpu)} | ${fix(r.efficiency.torch)} | ${fix(r.ratio)}× | ${fix(d?.medianStepMs, 2)} / ${fix(t?.medianStepMs, 2)} | ${gib(r.deepwellPeak)} / ${gib(r.torchPeak)} |`);
  }
  const top = rows.at(-1);
  console.log(`efficiency at ${top?.world} GPUs: Deepwell ${fix(top?.efficiency.deepwell)} (target >= 0.90 at 4), torch ${fix(top?.efficiency.torch)}; Deepwell / torch ${rows.map((r) => `${r.world}: ${fix(r.ratio)}×`).join(', ')} (target >= 1.0)`);
  writeFileSync(`${out}/scaling.json`, JSON.stringify(rows, null, 1));
} else if (what === 'curve') {
  const [la, fa, lb, fb, ...more] = args;
  const series = (f) => new Map(steps(f).map((e) => [e.step, e.loss]));
  const all = [[la, series(fa)], [lb, series(fb)], ...(more.length === 2 && existsSync(more[1]) ? [[more[0], series(more[1])]] : [])];
  const [a, b] = [all[0][1], all[1][1]];
  const common = [...a.keys()].filter((s) => b.has(s)).sort((x, y) => x - y);
  if (!common.length) { console.log(`no common steps in ${fa} and ${fb}`); process.exit(0); }
  let worst = { d: 0, step: null };
  for (const s of common) { const d = Math.abs(a.get(s) - b.get(s)); if (d > worst.d) worst = { d, step: s }; }
  const mean = (m, s0, s1) => { let t = 0, n = 0; for (let s = s0; s <= s1; s++) if (m.has(s)) { t += m.get(s); n++; } return n ? t / n : NaN; };
  console.log(`| steps | ${all.map(([l]) => l).join(' | ')} | ${la} − ${lb} |\n| --- |${' --- |'.repeat(all.length + 1)}`);
  let worstMean = { d: 0, at: null };
  const last = common.at(-1);
  for (let s0 = 1; s0 <= last; s0 += 10) {
    const s1 = Math.min(s0 + 9, last);
    const ms = all.map(([, m]) => mean(m, s0, s1));
    if (Math.abs(ms[0] - ms[1]) > worstMean.d) worstMean = { d: Math.abs(ms[0] - ms[1]), at: `${s0}-${s1}` };
    console.log(`| ${s0}-${s1} | ${ms.map((x) => fix(x, 4)).join(' | ')} | ${fix(ms[0] - ms[1], 4)} |`);
  }
  console.log(JSON.stringify({ compared: common.length, identical: common.filter((s) => a.get(s) === b.get(s)).length, maxAbsDiff: worst.d, atStep: worst.step, max10StepMeanGap: worstMean.d, at: worstMean.at, finalLoss: Object.fromEntries(all.map(([l, m]) => [l, m.get(last)])) }));
  console.log(`largest |Δ| of 10-step means ${fix(worstMean.d, 4)} at steps ${worstMean.at} (compare.mjs's target for two implementations: <= 0.02)`);
} else if (what === 'memory') {
  const [plain, zero, smiPlain, smiZero, dir] = args;
  const byRank = (f) => new Map(memories(f).map((m) => [m.rank, m]));
  const p = byRank(plain), z = byRank(zero);
  // nvidia-smi's largest sample per pid, named by rank where a rank<r>.pid file of that run holds it.
  const smi = (f) => { const top = new Map(); for (const l of text(f).split('\n')) { const [pid, mib] = l.split(',').map((x) => Number(x.trim())); if (pid && Number.isFinite(mib)) top.set(pid, Math.max(top.get(pid) ?? 0, mib)); } return top; };
  const ranks = [...new Set([...p.keys(), ...z.keys()])].sort((x, y) => x - y);
  console.log('| rank | peak GiB without ZeRO | with ZeRO-1 | saved GiB | planned GiB (dryrun) without / with | optimizer state GiB without / with |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of ranks) {
    const a = p.get(r), b = z.get(r);
    console.log(`| ${r} | ${gib(a?.peakMemoryBytes)} | ${gib(b?.peakMemoryBytes)} | ${a && b ? gib(a.peakMemoryBytes - b.peakMemoryBytes) : '-'} | ${gib(a?.plannedBytes)} / ${gib(b?.plannedBytes)} | ${gib(a?.optimizerStateBytes)} / ${gib(b?.optimizerStateBytes)} |`);
  }
  for (const [label, f, sub] of [['without ZeRO', smiPlain, 'plain'], ['with ZeRO-1', smiZero, 'zero']]) {
    const pids = new Map(ranks.map((r) => [Number(text(`${dir}/${sub}/rank${r}.pid`).trim()), r]));
    const top = smi(f);
    console.log(`nvidia-smi, largest per process (${label}): ${[...top].map(([pid, mib]) => `${pids.has(pid) ? `rank ${pids.get(pid)}` : `pid ${pid}`} ${(mib / 1024).toFixed(2)} GiB`).join(', ') || 'no samples (nvidia-smi lists no processes in this container?)'}`);
  }
} else if (what === 'kill') {
  const [log, total] = args;
  const ev = records(log);
  const resumes = ev.filter((e) => e.event === 'resume');
  const ckpts = ev.filter((e) => e.event === 'checkpoint').map((e) => e.step);
  const stepEv = ev.filter((e) => e.event === 'step');
  const at = new Map();
  for (const e of stepEv) at.set(e.step, [...(at.get(e.step) ?? []), e.loss]);
  const twice = [...at].filter(([, l]) => l.length > 1);
  const r = resumes.at(-1);
  const afterResume = r ? ev.slice(ev.indexOf(r)).filter((e) => e.event === 'step') : [];
  const s = summary(log);
  console.log(`checkpoints written: steps ${ckpts.join(', ') || 'none'}`);
  console.log(r ? `resumed from step ${r.step} (${r.path}); the next step run: ${afterResume[0]?.step ?? 'none'}; the last: ${afterResume.at(-1)?.step ?? 'none'} of ${total}` : 'no resume event in the log');
  console.log(`steps run twice (after the checkpoint, before the kill): ${twice.length ? `${twice[0][0]}-${twice.at(-1)[0]}, identical losses in ${twice.filter(([, l]) => l.every((x) => x === l[0])).length} of ${twice.length}` : 'none'}`);
  const ok = r && afterResume[0]?.step === r.step + 1 && afterResume.at(-1)?.step === Number(total) && s?.resumedFrom === r.step;
  console.log(`resume ${ok ? 'PASSED' : 'FAILED'}: ${s ? `summary ranSteps ${s.ranSteps}, resumedFrom ${s.resumedFrom}, finalLoss ${fix(s.finalLoss, 4)}` : 'no summary line (the second run did not finish)'}`);
}
EOF
}

for part in "${parts[@]}"; do
  case $part in
  scaling)
    for W in $WORLDS; do
      dir=$RUNS/scaling/w$W
      rm -rf "$dir"
      step "scaling: Deepwell on $W GPU(s), $STEPS steps, batch $BATCH per GPU"
      timeout 400 $DW launch --gpus "$W" $BENCH "$STEPS" "$dir" "$BATCH" > "$OUT/scaling-deepwell-w$W.log" 2>&1
      echo "exit $?"; grep -E "deepwell launch:|Error|error:" "$OUT/scaling-deepwell-w$W.log" | head -5; lines "$OUT/scaling-deepwell-w$W.log" | cut -c1-400
      step "scaling: PyTorch DDP ($MODE) on $W GPU(s)"
      if [ -f "$dir/init.safetensors" ]; then
        timeout 500 $TORCHRUN --nproc-per-node "$W" $TORCHREF "$dir" "$MODE" > "$OUT/scaling-torch-w$W.log" 2>&1
        echo "exit $?"; grep -E "Error|error:" "$OUT/scaling-torch-w$W.log" | head -5; lines "$OUT/scaling-torch-w$W.log" | cut -c1-400
      else
        echo "skipped: the Deepwell run wrote no init.safetensors into $dir"
      fi
      cp "$dir"/*.jsonl "$OUT/" 2>/dev/null
    done
    step "scaling: the table"
    report scaling "$OUT" "$MODE" $WORLDS | tee "$OUT/scaling.md"
    ;;
  curve)
    W=$GPUS
    S=${DDP_CURVE_STEPS:-200}
    [ "$W" -ge 2 ] || { step "curve: skipped (it compares W >= 2 GPUs with one; $W here)"; continue; }
    dir=$RUNS/curve
    rm -rf "$dir"
    step "curve: one GPU, $W micro-batches of $BATCH a step (DDP_ACCUMULATE=$W), $S steps"
    DDP_ACCUMULATE=$W timeout 500 $DW launch --gpus 1 $BENCH "$S" "$dir" "$BATCH" > "$OUT/curve-deepwell-1gpu-acc$W.log" 2>&1
    echo "exit $?"; lines "$OUT/curve-deepwell-1gpu-acc$W.log" | grep summary | cut -c1-400
    step "curve: $W GPUs, batch $BATCH each, $S steps"
    timeout 400 $DW launch --gpus "$W" $BENCH "$S" "$dir" "$BATCH" > "$OUT/curve-deepwell-w$W.log" 2>&1
    echo "exit $?"; lines "$OUT/curve-deepwell-w$W.log" | grep summary | cut -c1-400
    torch_series=()
    if [ "${DDP_CURVE_TORCH:-0}" = 1 ]; then
      step "curve: PyTorch DDP ($MODE) on $W GPUs"
      timeout 500 $TORCHRUN --nproc-per-node "$W" $TORCHREF "$dir" "$MODE" > "$OUT/curve-torch-w$W.log" 2>&1
      echo "exit $?"; lines "$OUT/curve-torch-w$W.log" | grep summary | cut -c1-400
      torch_series=("torch-ddp-${W}gpu" "$dir/torch-ddp-w$W-$MODE.jsonl")
    fi
    cp "$dir"/*.jsonl "$OUT/" 2>/dev/null
    step "curve: the loss, $W GPUs against one GPU with the same global batch"
    report curve "${W}gpu" "$dir/deepwell-ddp-w$W.jsonl" "1gpu-acc$W" "$dir/deepwell-ddp-w1-acc$W.jsonl" "${torch_series[@]}" | tee "$OUT/curve.md"
    ;;
  memory)
    W=$GPUS
    S=${DDP_MEMORY_STEPS:-30}
    for z in 0 1; do
      sub=$([ $z = 1 ] && echo zero || echo plain)
      dir=$RUNS/memory/$sub
      rm -rf "$dir"
      step "memory: $W GPUs, $S steps, DDP_ZERO=$z"
      sample_gpu_memory "$OUT/memory-smi-$sub.csv" & spid=$!
      DDP_ZERO=$z timeout 400 $DW launch --gpus "$W" $BENCH "$S" "$dir" "$BATCH" > "$OUT/memory-$sub.log" 2>&1
      echo "exit $?"
      kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
      lines "$OUT/memory-$sub.log" | cut -c1-300
    done
    step "memory: per GPU, without and with ZeRO-1"
    report memory "$OUT/memory-plain.log" "$OUT/memory-zero.log" "$OUT/memory-smi-plain.csv" "$OUT/memory-smi-zero.csv" "$RUNS/memory" | tee "$OUT/memory.md"
    ;;
  kill | stall)
    W=$GPUS
    S=${DDP_KILL_STEPS:-100}
    AT=${DDP_KILL_AT:-50}
    EVERY=${DDP_KILL_EVERY:-20}
    KR=${DDP_KILL_RANK:-$([ "$W" -gt 1 ] && echo 1 || echo 0)}
    if [ "$part" = kill ]; then SIG=KILL; NCCL_MS=${DDP_NCCL_TIMEOUT_MS:-120000}; else SIG=STOP; NCCL_MS=${DDP_NCCL_TIMEOUT_MS:-60000}; fi
    [ "$part" = kill ] || [ "$W" -ge 2 ] || { step "stall: skipped (a stopped rank is noticed by its peers' NCCL waits: it needs 2 or more GPUs; $W here)"; continue; }
    dir=$RUNS/$part
    rm -rf "$dir"; mkdir -p "$dir"
    log=$dir/deepwell-ddp-w$W.jsonl
    run_env=(DDP_CKPT_DIR="$dir/ckpt" DDP_CKPT_EVERY="$EVERY" DDP_NCCL_TIMEOUT_MS="$NCCL_MS")
    step "$part: $W GPUs, $S steps, a checkpoint every $EVERY; SIG$SIG to rank $KR after step $AT (NCCL timeout $NCCL_MS ms)"
    env "${run_env[@]}" timeout 600 $DW launch --gpus "$W" $BENCH "$S" "$dir" "$BATCH" > "$OUT/$part-1.log" 2>&1 &
    lpid=$!
    deadline=$((SECONDS + 400))
    while kill -0 "$lpid" 2>/dev/null && [ "$(last_step "$log")" -lt "$AT" ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    pid=$(cat "$dir/rank$KR.pid" 2>/dev/null)
    if ! kill -0 "$lpid" 2>/dev/null || [ -z "$pid" ] || [ "$(last_step "$log")" -lt "$AT" ]; then
      echo "!!! the first run did not reach step $AT (at step $(last_step "$log"); pid file of rank $KR: ${pid:-none}): not killed"
      kill "$lpid" 2>/dev/null; wait "$lpid"; echo "launcher exit $?"; tail -20 "$OUT/$part-1.log"
      continue
    fi
    echo "rank $KR is pid $pid ($(tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -E '^(RANK|WORLD_SIZE)=' | tr '\n' ' ')); the log is at step $(last_step "$log")"
    t0=$SECONDS
    kill -"$SIG" "$pid"
    wait "$lpid"; rc=$?
    dt=$((SECONDS - t0))
    echo "launcher exit $rc, $dt s after SIG$SIG (the log stopped at step $(last_step "$log"); checkpoints: $(ls "$dir/ckpt" 2>/dev/null | tr '\n' ' '))"
    grep -E "deepwell launch:" "$OUT/$part-1.log"
    sed -E 's/^\[[0-9]+\] //' "$OUT/$part-1.log" | grep -E "TIMEOUT|PEER_FAILED|DeepwellError|NCCL" | grep -v "NCCL INFO" | sort | uniq -c | head -8
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && { echo "!!! rank $KR's process $pid is still there: killed now"; kill -9 "$pid"; }
    if [ "$SIG" = KILL ]; then
      named=$(grep -cE "deepwell launch: rank $KR of $W " "$OUT/$part-1.log")
      ok=$([ "$rc" -ne 0 ] && [ "$named" -ge 1 ] && [ "$dt" -le $((NCCL_MS / 1000)) ] && echo PASSED || echo FAILED)
      echo "the launcher's exit: $ok (non-zero: $rc; names rank $KR: $([ "$named" -ge 1 ] && echo yes || echo no); within the NCCL timeout of $((NCCL_MS / 1000)) s: $dt s)"
    else
      ok=$([ "$rc" -ne 0 ] && [ "$dt" -le $((NCCL_MS / 1000 + 30)) ] && echo PASSED || echo FAILED)
      echo "the job's end without a dead process: $ok (non-zero: $rc; $dt s against the NCCL timeout of $((NCCL_MS / 1000)) s + 30)"
    fi
    step "$part: the same command again (resumes from the newest checkpoint in $dir/ckpt)"
    env "${run_env[@]}" timeout 500 $DW launch --gpus "$W" $BENCH "$S" "$dir" "$BATCH" > "$OUT/$part-2.log" 2>&1
    echo "exit $?"; grep -E "resumed from|deepwell launch:" "$OUT/$part-2.log"; lines "$OUT/$part-2.log" | grep summary | cut -c1-400
    report kill "$log" "$S" | tee "$OUT/$part.md"
    cp "$log" "$OUT/$part-deepwell-w$W.jsonl"
    ;;
  esac
done
device_end
