# Merges the attention kernel lab's result lines with bench/attention_torch.py's JSON into markdown
# (used by scripts/attention-check.sh; stdlib only).
#
#   python3 bench/attention_table.py --torch OUT/attention_torch.json [--codes OUT/exit-codes.tsv] LAB_LOG...
#
# A lab line (one per kernel, shape and pass; the first token is the kernel name):
#   fwd_sm90 bf16 B=16 H=12 Hkv=12 Sq=1024 Sk=1024 D=64 causal=1 err=1.2e-03 lseErr=2e-06 PASS ms=0.123 tflops=456.7
#   bwd_sm90 bf16 B=16 H=12 Hkv=12 Sq=1024 Sk=1024 D=64 causal=1 pass=bwd dqErr=... PASS ms=0.4 tflops=300
# Per benchmark case: our fastest passing kernel (its name in the cell), cuDNN and FA2 as
# attention_torch.py timed them, and speed ratios = their ms / our ms (above 1: ours is faster).
import argparse, json, re, sys

# (B, H, Hkv, S, D, causal), in attention_torch.py's order.
CASES = [
    (16, 12, 12, 1024, 64, True),
    (4, 16, 16, 4096, 128, True),
    (4, 16, 16, 4096, 128, False),
    (8, 16, 16, 2048, 64, True),
    (1, 32, 32, 16384, 128, True),
    (2, 32, 8, 8192, 128, True),
    (1, 8, 8, 512, 64, True),
]


SEED = (1, 8, 8, 512, 64, True)


def case_name(B, H, Hkv, S, D, causal):
    heads = f"H{H}" if Hkv == H else f"H{H}_Hkv{Hkv}"
    return f"B{B}_{heads}_S{S}_D{D}_{'causal' if causal else 'noncausal'}"


KV = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\S+)$")
NEED = ("B", "H", "Sq", "Sk", "D", "causal")


def parse_lab_line(line):
    """A dict for a lab result line, or None for any other line."""
    toks = line.strip().split()
    if len(toks) < 3 or "=" in toks[0]:
        return None
    kv, status = {}, None
    for t in toks[1:]:
        m = KV.match(t)
        if m:
            kv[m.group(1)] = m.group(2)
        elif t in ("PASS", "FAIL"):
            status = t
    if status is None or any(k not in kv for k in NEED):
        return None
    try:
        r = {
            "kernel": toks[0],
            "dtype": toks[1] if "=" not in toks[1] else "?",
            "B": int(kv["B"]), "H": int(kv["H"]), "Hkv": int(kv.get("Hkv", kv["H"])),
            "Sq": int(kv["Sq"]), "Sk": int(kv["Sk"]), "D": int(kv["D"]),
            "causal": kv["causal"].lower() in ("1", "true", "yes"),
            "pass": kv.get("pass", "fwd"),
            "status": status,
            "ms": float(kv["ms"]) if "ms" in kv else None,
            "tflops": float(kv["tflops"]) if "tflops" in kv else None,
            "layout": kv.get("layout"),
            "mode": kv.get("mode"),
            "graph_us": float(kv["graph_us"]) if "graph_us" in kv else None,
            "errs": {k: v for k, v in kv.items() if k.lower().endswith("err") or k == "deterministic"},
        }
    except ValueError:
        return None
    return r


def case_key(r):
    if r["Sq"] != r["Sk"]:
        return None
    return (r["B"], r["H"], r["Hkv"], r["Sq"], r["D"], r["causal"])


def fmt_t(ms, tf, who=None):
    if ms is None:
        return "—"
    s = f"{ms:.3f} ms / {tf:.0f} TF" if tf is not None else f"{ms:.3f} ms"
    return s + (f" ({who})" if who else "")


def ratio(theirs, ours):
    if theirs is None or ours is None or ours <= 0:
        return "—"
    return f"{theirs / ours:.2f}×"


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--torch", dest="torch_json")
    ap.add_argument("--codes", help="TSV: name<TAB>what<TAB>exit code")
    ap.add_argument("lab", nargs="*", help="files holding the lab binaries' output")
    a = ap.parse_args(argv)

    lab = []
    for path in a.lab:
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    r = parse_lab_line(line)
                    if r:
                        lab.append(r)
        except OSError as e:
            print(f"(cannot read {path}: {e})")

    torch_meta, trows, seed = {}, {}, []
    if a.torch_json:
        try:
            with open(a.torch_json) as f:
                torch_meta = json.load(f)
            for r in torch_meta.get("rows", []):
                trows[(r["case"], r["backend"], r["pass"])] = r
            seed = torch_meta.get("seed", [])
        except (OSError, ValueError) as e:
            print(f"(no torch results: {a.torch_json}: {e})\n")

    out = []
    if torch_meta:
        out.append(f"GPU: {torch_meta.get('gpu')} · torch {torch_meta.get('torch')} · CUDA {torch_meta.get('cuda')} · cuDNN {torch_meta.get('cudnn')} · {torch_meta.get('date')}")
        out.append("")
    out.append("Ratios are their time / ours (above 1: ours is faster). \"ours\" is the fastest passing bf16 lab kernel at that shape ([B, H, S, D] layout where the lab timed several).")
    out.append("")
    for p in ("fwd", "bwd"):
        out.append(f"### {p}")
        out.append("")
        out.append(f"| case | ours {p} | cuDNN {p} | FA2 {p} | vs cuDNN | vs FA2 |")
        out.append("|---|---|---|---|---|---|")
        for c in CASES:
            name = case_name(*c)
            mine = [r for r in lab if case_key(r) == c and r["pass"] == p]
            # bf16 (as torch), timed; the [B, H, S, D] layout (as torch) when the lab timed several.
            good = [r for r in mine if r["status"] == "PASS" and r["ms"] and r["ms"] > 0 and r["dtype"] in ("bf16", "?")]
            good = [r for r in good if r["layout"] in (None, "bhsd")] or good
            # The schedule production picks (a lab line with a forced mode= is an A/B, not the product).
            good = [r for r in good if r["mode"] in (None, "auto")]
            best = min(good, key=lambda r: r["ms"]) if good else None
            failed = sorted({r["kernel"] for r in mine if r["status"] != "PASS"})
            if best:
                who = best["kernel"] + (f" {best['layout']}" if best["layout"] not in (None, "bhsd") else "")
                ours = fmt_t(best["ms"], best["tflops"], who) + (f"; FAIL: {', '.join(failed)}" if failed else "")
            elif mine:
                ours = "FAIL (" + ", ".join(sorted({r["kernel"] for r in mine})) + ")"
            else:
                ours = "—"
            cells = []
            for b in ("cudnn", "fa2"):
                t = trows.get((name, b, p))
                if t is None:
                    cells.append(("—", None))
                elif t.get("ms") is None:
                    cells.append(("rejected" if t.get("error") else "—", None))
                else:
                    mark = " *" if t.get("note") else ""
                    cells.append((fmt_t(t["ms"], t.get("tflops")) + mark, t["ms"]))
            om = best["ms"] if best else None
            if c == SEED:
                name += " †"
            out.append(f"| {name} | {ours} | {cells[0][0]} | {cells[1][0]} | {ratio(cells[0][1], om)} | {ratio(cells[1][1], om)} |")
        out.append("")

    notes = []
    for (name, b, p), t in trows.items():
        if b == "default" and p == "fwd" and t.get("ms") is not None:
            notes.append(f"- {name}: the plain SDPA call ran `{t.get('ran', '?')}` ({t['ms']:.3f} ms fwd)")
    for (name, b, p), t in trows.items():
        if p == "fwd" and (t.get("note") or (t.get("ms") is None and t.get("error"))):
            notes.append(f"- {name} {b}: {t.get('note') or ''}{' ' if t.get('note') and t.get('error') else ''}{('error: ' + t['error']) if t.get('error') else ''}")
    if notes:
        out.append("Torch notes (* in the table):")
        out.append("")
        out.extend(notes)
        out.append("")

    out.append("† The seed config is launch-bound: torch's event timing there includes Python and dispatch time between")
    out.append("the events, so compare its kernel times below instead.")
    out.append("")
    if seed:
        out.append("### seed config, forward without launch overhead (torch)")
        out.append("")
        sm = [r for r in lab if case_key(r) == SEED and r["pass"] == "fwd" and r["status"] == "PASS" and r["ms"] and r["dtype"] in ("bf16", "?")]
        sm = [r for r in sm if r["layout"] in (None, "bhsd") and r["mode"] in (None, "auto")] or sm
        if sm:
            b = min(sm, key=lambda r: r["ms"])
            out.append(f"Ours ({b['kernel']}, CUDA events around one launch from C++): {b['ms'] * 1000:.2f} µs.")
            gr = [r for r in sm if r["graph_us"] is not None]
            if gr:
                g = min(gr, key=lambda r: r["graph_us"])
                out.append(f"Ours under CUDA-graph replay (20 calls a graph, median of 50 replays, per call; the method of the first row below): "
                           f"**{g['graph_us']:.2f} µs** ({g['kernel']}).")
            out.append("")
        out.append("| backend | method | µs per call | TFLOP/s |")
        out.append("|---|---|---|---|")
        for s in seed:
            us = f"{s['us']:.2f}" if s.get("us") is not None else "failed: " + str(s.get("error"))[:120]
            tf = f"{s['tflops']:.1f}" if s.get("tflops") is not None else "—"
            out.append(f"| {s['backend']} | {s['method']} | {us} | {tf} |")
        out.append("")

    if lab:
        out.append("### every lab line")
        out.append("")
        out.append("| kernel | dtype | B | H | Hkv | Sq | Sk | D | causal | pass | layout | mode | status | errors | ms | TFLOP/s | graph µs |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in lab:
            errs = " ".join(f"{k}={v}" for k, v in r["errs"].items())
            ms = f"{r['ms']:.4f}" if r["ms"] is not None else "—"
            tf = f"{r['tflops']:.1f}" if r["tflops"] is not None else "—"
            out.append(f"| {r['kernel']} | {r['dtype']} | {r['B']} | {r['H']} | {r['Hkv']} | {r['Sq']} | {r['Sk']} | {r['D']} | {int(r['causal'])} | {r['pass']} | {r['layout'] or ''} | {r['mode'] or ''} | {r['status']} | {errs} | {ms} | {tf} | {'' if r['graph_us'] is None else f"{r['graph_us']:.2f}"} |")
        out.append("")
    else:
        out.append("(no lab result lines found)")
        out.append("")

    if a.codes:
        try:
            with open(a.codes) as f:
                rows = [l.rstrip("\n").split("\t") for l in f if l.strip()]
            out.append("### exit codes")
            out.append("")
            out.append("| binary | run | exit |")
            out.append("|---|---|---|")
            for row in rows:
                row = (row + ["", "", ""])[:3]
                rc = row[2]
                meaning = {"0": "0", "124": "124 (timeout)"}.get(rc, f"{rc} (FAILED)")
                out.append(f"| {row[0]} | {row[1]} | {meaning} |")
            out.append("")
        except OSError as e:
            out.append(f"(cannot read {a.codes}: {e})")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
