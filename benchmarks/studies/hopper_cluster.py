"""Hopper thread-block cluster probes for an LSTM whose `W_h` is split over a cluster.

Issue 13, item 7: explore a Mosaic GPU design for H = 128 to 512 in which a cluster
of `n` blocks (8 portable, 16 non-portable) each holds a column slice of `W_h`,
computes its slice of the gates for every step in one launch, and sends its part of
`h_t` to every block of the cluster through distributed shared memory (DSMEM), with
one cluster barrier per step. Nothing here runs on a GPU: the kernels are compiled
for sm_90 without a device (the CUDA plugin runs Mosaic GPU, LLVM and ptxas), and
the values are checked where the CPU can check them. It prints one table row per
probe: OK, FAIL with the exact error, or the value check's maximum error.

    JAX_PLATFORMS=cpu PYTHONPATH=. /tmp/accel-venv/bin/python \\
        benchmarks/studies/hopper_cluster.py benchmarks/targets/h200.pbtxt

The venv has jax, jax-cuda12-plugin/pjrt, nvidia-cuda-nvcc-cu12 and absl-py at the
project's jax version (as for `benchmarks/gpu.py`'s deviceless compiles).

Probes:
- `exchange`: blocks of a cluster write a vector into every block's shared memory
  (`plgpu.cluster_ref`), arrive on a `plgpu.ClusterBarrier`, wait, read all vectors.
- `lstm`: the LSTM forward recurrence, `W_h` split by columns over the cluster
  (`cluster_lstm`); compiled for sm_90 at H = 128, 256, 512.
- `interpret`: both kernels under the Mosaic GPU interpreter on the CPU
  (`InterpretGPUParams(detect_races=True)`) and under `interpret=True`, each in a
  subprocess (the interpreter must be reset after an error). Neither runs a
  cluster in jax 0.10.2, so the LSTM is also run with `warpgroups=True`: the same
  program with the cluster's blocks turned into warpgroups of one block.
- `emulate`: the same decomposition (per-block weight slices, per-block gate
  columns, exchange of `h` slices, double-buffered `h`) in plain JAX against a
  plain LSTM: the layout algebra the kernel relies on, checked on the CPU.

Shape legend: `t` time, `b` batch, `h` hidden size, `n` blocks in the cluster,
`hb = h // n` the units one block owns, `g = 4` LSTM gates in the order i, f, g, o.
"""

import glob
import os
import subprocess
import sys
import tempfile
import time

DUMP = tempfile.mkdtemp(prefix="mosaic-dump-")
os.environ.setdefault("MOSAIC_GPU_DUMP_PTXAS", "1")
os.environ.setdefault("MOSAIC_GPU_DUMP_TO", DUMP)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax._src.lib.mlir import ir  # noqa: E402
from jax._src.lib.mlir.dialects import llvm  # noqa: E402
from jax.experimental import pallas as pl  # noqa: E402
from jax.experimental.pallas import mosaic_gpu as plgpu  # noqa: E402

GATES = 4


# --------------------------------------------------------------------------- probes


def exchange_kernel(n, length=128, interpret=None):
    """The cluster exchange probe.

    Returns a function of `x`, array of shape `(n, length)` float32, giving an array
    of shape `(n, n, length)`: block `j` of the cluster writes row `j` of `x` into
    row `j` of every block's shared-memory buffer, arrives on one cluster barrier,
    waits, and copies its buffer to output `j`; so every output `j` equals `x`.
    """

    def body(x_ref, o_ref, recv, bar):
        me = jax.lax.axis_index("c")
        v = x_ref[me]
        for peer in range(n):
            plgpu.cluster_ref(recv, {"c": peer}).at[me][...] = v
        plgpu.barrier_arrive(bar)
        plgpu.barrier_wait(bar)
        o_ref[me] = recv[...]

    return plgpu.kernel(
        body,
        out_type=jax.ShapeDtypeStruct((n, n, length), jnp.float32),
        cluster=(n,),
        cluster_names=("c",),
        scratch_types=[
            plgpu.SMEM((n, length), jnp.float32),
            plgpu.ClusterBarrier(collective_axes=("c",)),
        ],
        compiler_params=plgpu.CompilerParams(),
        interpret=interpret,
    )


def _cluster_fence():
    """`fence.acq_rel.cluster` in every thread of the warpgroup (inline PTX).

    Pallas' remote arrive is `mbarrier.arrive.shared::cluster` at its default
    `.release.cta` semantics and its wait `.acquire.cta`; the DSMEM writes of one
    block are read by the other blocks, so each side fences at cluster scope.
    """

    @plgpu.inline_mgpu()
    def fence(ctx):
        del ctx
        llvm.inline_asm(
            ir.Type.parse("!llvm.void"),
            [],
            "fence.acq_rel.cluster;",
            "",
            has_side_effects=True,
        )

    fence()


def _tiled(shape, dtype, minor=None):
    """Shared memory of `shape` tiled and swizzled for `wgmma` (last dim the minor).

    The swizzle is the largest that `minor` elements (by default `shape[-1]`) allow:
    `wgmma` wants one swizzle for both operands, so `W_h`'s slices take the one of
    the `(b, hb)` slices of `h`.
    """
    bits = jnp.finfo(dtype).bits
    swizzle = plgpu.find_swizzle((minor or shape[-1]) * bits)
    transforms = (
        plgpu.TilingTransform((8, swizzle * 8 // bits)),
        plgpu.SwizzleTransform(swizzle),
    )
    return plgpu.SMEM(shape, dtype, transforms=transforms)


def cluster_lstm(
    steps,
    batch,
    hidden,
    n,
    dtype=jnp.bfloat16,
    buffers=2,
    fence=True,
    zx_dtype=jnp.float32,
    warpgroups=False,
    interpret=None,
):
    """The LSTM forward recurrence with `W_h` split by columns over a cluster of `n`.

    Returns a function `(zx, w, h0, c0) -> (hs, c_last)` in the blocked layout of
    `to_blocks` (the caller projects the inputs outside, as every rnnjax kernel
    does): `zx` of shape `(n * t, b, g * hb)` in `zx_dtype` (row `j * t + s`:
    `x_s @ W_x + b`, block `j`'s gate columns); `w` of shape `(n, n, hb, g * hb)`
    in `dtype` (`w[j, k]`: rows `k * hb : (k + 1) * hb` of block `j`'s column
    slice of `W_h`), for float32 `(n, n, g * hb, hb)`, each slice transposed so
    that the contraction dimension is the minor one, which float32 (tf32) `wgmma`
    requires ("Only f16 WGMMA supports transposes"; the interpreter has no
    transposed references, so 16-bit types keep the plain layout); `h0` of shape
    `(n, b, hb)` in `dtype`; `c0` of shape `(n, b, hb)` float32. `hs` has shape
    `(n * t, b, hb)` float32 and `c_last` shape `(n, b, hb)` float32.

    The grid has one cluster per batch tile of 64 rows (`wgmma`'s M), so `b` is a
    multiple of 64. Block `j` keeps `w[j]` (`4 h^2 / n` elements) in shared memory
    for all steps and a copy of the whole `h_s` (`b_tile x h`), in `n` slices of
    `(64, hb)`. Step `s` accumulates `sum_k h_s[k] @ w[j, k]` with `wgmma`, adds
    `zx[j, s]`, updates its `hb` units and writes `h_{s+1}[j]` into every block
    (DSMEM), then arrives on a cluster barrier of every block and waits.
    `buffers=2`: `h` double-buffered, one cluster barrier a step (a block writes
    buffer `s % 2` again only at step `s + 1`, after every block has arrived at
    step `s`, so after every block finished reading it). `buffers=1`: half the
    shared memory for `h`, two cluster barriers a step (all have read; all have
    written). `zx_dtype=bfloat16` saves the 16 KiB that let H = 512 fit. `fence`
    puts `fence.acq_rel.cluster` on both sides of each cluster barrier
    (`_cluster_fence`).

    `warpgroups=True` builds the same program with the `n` blocks turned into `n`
    warpgroups of one block (`num_threads=n`): the `h` slices go through the
    block's own shared memory under an ordinary `plgpu.Barrier` of `n` arrivals, the
    scratch gets a leading axis of `n`, and there is no cluster fence. Only the
    exchange differs, so it is what the Mosaic GPU interpreter can run on the CPU
    (it has no cluster references or cluster barriers); on a GPU it would hold all
    of `W_h` in one block, which is the `sequence` design's limit.
    """
    hb = hidden // n
    width = GATES * hb
    tile = 64
    k_minor = jnp.dtype(dtype).itemsize == 4
    if batch % tile:
        raise ValueError(f"batch {batch} is not a multiple of {tile}")

    def body(zx_ref, w_ref, h0_ref, c0_ref, hs_ref, c_ref, *scratch):
        w_smem, h_smem, zx_smem, o_smem, tma, cbar = scratch
        j = jax.lax.axis_index("c")
        if warpgroups:  # each warpgroup takes its part of the block's scratch
            w_smem, zx_smem, o_smem = (r.at[j] for r in (w_smem, zx_smem, o_smem))

        def tma_at(i):  # the interpreter takes one integer index into barriers
            return tma.at[4 * j + i] if warpgroups else tma.at[i]

        first = 0 if batch == tile else jax.lax.axis_index("b") * tile
        rows = pl.ds(first, tile)
        for k in range(n):  # one TMA copy per slice: at most 5 strided dimensions
            plgpu.copy_gmem_to_smem(w_ref.at[j, k], w_smem.at[k], tma_at(0))
            plgpu.barrier_wait(tma_at(0))
            if not warpgroups:  # each block loads all of h_0 into its own memory
                plgpu.copy_gmem_to_smem(h0_ref.at[k, rows], h_smem.at[0, k], tma_at(1))
                plgpu.barrier_wait(tma_at(1))
        if warpgroups:  # one shared h: each warpgroup loads its slice, then all sync
            plgpu.copy_gmem_to_smem(h0_ref.at[j, rows], h_smem.at[0, j], tma_at(1))
            plgpu.barrier_wait(tma_at(1))
        plgpu.copy_gmem_to_smem(c0_ref.at[j, rows], o_smem, tma_at(2))
        plgpu.barrier_wait(tma_at(2))
        c0 = o_smem[...]

        def sigmoid(v):
            return 0.5 * jnp.tanh(0.5 * v) + 0.5

        def sync(barrier):
            if fence and not warpgroups:
                _cluster_fence()
            plgpu.commit_smem()
            plgpu.barrier_arrive(barrier)
            plgpu.barrier_wait(barrier)
            if fence and not warpgroups:
                _cluster_fence()
                plgpu.commit_smem()  # generic-proxy writes before the next wgmma

        if warpgroups:
            sync(cbar.at[2])

        def step(s, c):
            read = s % 2 if buffers == 2 else 0
            write = 1 - read if buffers == 2 else 0
            plgpu.copy_gmem_to_smem(zx_ref.at[j * steps + s, rows], zx_smem, tma_at(3))

            def product(acc):
                for k in range(n):
                    w_k = w_smem.at[k]
                    if k_minor:
                        w_k = plgpu.transpose_ref(w_k, (1, 0))
                    plgpu.wgmma(acc, h_smem.at[read, k], w_k)
                return acc[...]

            z = pl.run_scoped(product, plgpu.ACC((tile, width), jnp.float32))
            plgpu.barrier_wait(tma_at(3))
            z = z + zx_smem[...].astype(jnp.float32)
            gi = sigmoid(z[:, 0 * hb : 1 * hb])
            gf = sigmoid(z[:, 1 * hb : 2 * hb])
            gg = jnp.tanh(z[:, 2 * hb : 3 * hb])
            go = sigmoid(z[:, 3 * hb : 4 * hb])
            c = gf * c + gi * gg
            h = go * jnp.tanh(c)
            if buffers == 1:
                sync(cbar.at[0])  # every block has read h_s
            hq = h.astype(dtype)
            if warpgroups:
                h_smem.at[write, j][...] = hq
            for peer in range(0 if warpgroups else n):
                plgpu.cluster_ref(h_smem, {"c": peer}).at[write, j][...] = hq
            o_smem[...] = h
            plgpu.commit_smem()
            plgpu.copy_smem_to_gmem(o_smem, hs_ref.at[j * steps + s, rows])
            sync(cbar.at[s % 2 if buffers == 2 else 1])  # every block has written
            plgpu.wait_smem_to_gmem(0)
            return c

        c = jax.lax.fori_loop(0, steps, step, c0)
        o_smem[...] = c
        plgpu.commit_smem()
        plgpu.copy_smem_to_gmem(o_smem, c_ref.at[j, rows])
        plgpu.wait_smem_to_gmem(0)

    lead = (n,) if warpgroups else ()
    if warpgroups:
        layout = dict(num_threads=n, thread_name="c")
        exchange = plgpu.Barrier(num_arrivals=n, num_barriers=3)
    else:
        layout = dict(cluster=(n,), cluster_names=("c",))
        exchange = plgpu.ClusterBarrier(collective_axes=("c",), num_barriers=2)
    return plgpu.kernel(
        body,
        out_type=(
            jax.ShapeDtypeStruct((n * steps, batch, hb), jnp.float32),
            jax.ShapeDtypeStruct((n, batch, hb), jnp.float32),
        ),
        grid=(batch // tile,),
        grid_names=("b",),
        scratch_types=[
            _tiled(
                (*lead, n, *((width, hb) if k_minor else (hb, width))), dtype, minor=hb
            ),
            _tiled((buffers, n, tile, hb), dtype),
            _tiled((*lead, tile, width), zx_dtype),
            _tiled((*lead, tile, hb), jnp.float32),
            plgpu.Barrier(num_barriers=4 * len(lead) * n or 4),
            exchange,
        ],
        compiler_params=plgpu.CompilerParams(),
        interpret=interpret,
        **layout,
    )


# ----------------------------------------------------------------- layout and values


def to_blocks(zx, w_h, h0, c0, n, dtype=jnp.bfloat16):
    """The plain layout to the blocked one of `cluster_lstm`.

    `zx` of shape `(t, b, g * h)`, `w_h` of shape `(h, g * h)` (gate columns
    `[i | f | g | o]`), `h0` and `c0` of shape `(b, h)`; returns the four blocked
    arrays described in `cluster_lstm`, `w` and `h0` in `dtype`.
    """
    t, b, _ = zx.shape
    hidden = w_h.shape[0]
    hb = hidden // n
    # column c = gate * h + j * hb + u  ->  (j, gate * hb + u)
    zx_b = zx.reshape(t, b, GATES, n, hb).transpose(3, 0, 1, 2, 4)
    zx_b = zx_b.reshape(n * t, b, GATES * hb)
    w_b = w_h.reshape(n, hb, GATES, n, hb).transpose(3, 0, 1, 2, 4)
    w_b = w_b.reshape(n, n, hb, GATES * hb).astype(dtype)
    if jnp.dtype(dtype).itemsize == 4:
        w_b = w_b.swapaxes(2, 3)
    h0_b = h0.reshape(b, n, hb).transpose(1, 0, 2).astype(dtype)
    c0_b = c0.reshape(b, n, hb).transpose(1, 0, 2)
    return zx_b, w_b, h0_b, c0_b


def from_blocks(hs_b, n):
    """`hs` of shape `(n * t, b, hb)` back to `(t, b, n * hb)`."""
    nt, b, hb = hs_b.shape
    return hs_b.reshape(n, nt // n, b, hb).transpose(1, 2, 0, 3).reshape(-1, b, n * hb)


def reference(zx, w_h, h0, c0, dtype):
    """Plain LSTM from projected inputs: `hs` of shape `(t, b, h)`, last `c` `(b, h)`.

    The recurrent product takes `h` and `W_h` in `dtype` with a float32 result, as
    the kernel's `wgmma` does.
    """
    hidden = w_h.shape[0]

    def cell(carry, z_t):
        h, c = carry
        z = z_t + jnp.dot(
            h.astype(dtype), w_h.astype(dtype), preferred_element_type=jnp.float32
        )
        i, f, g, o = (z[:, k * hidden : (k + 1) * hidden] for k in range(GATES))
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    (_, c), hs = jax.lax.scan(cell, (h0, c0), zx)
    return hs, c


def emulate(zx_b, w_b, h0_b, c0_b):
    """The kernel's algorithm in plain JAX on the blocked layout (`cluster_lstm`).

    Each block `j` holds `w_b[j]` and a double buffer of `h` slices; every step it
    sums `n` slice products, updates its units, and writes its slice into the next
    buffer of every block. Returns `hs` `(n * t, b, hb)` and `c` `(n, b, hb)`.
    """
    n, dtype = w_b.shape[0], w_b.dtype
    if jnp.dtype(dtype).itemsize == 4:
        w_b = w_b.swapaxes(2, 3)
    zx_b = zx_b.reshape(n, -1, *zx_b.shape[1:])
    steps = zx_b.shape[1]
    hb = h0_b.shape[-1]
    bufs = jnp.stack([jnp.stack([h0_b.astype(dtype)] * n)] * 2)  # (2, n, n, b, hb)
    c = c0_b
    outs = []
    for s in range(steps):
        slot = s % 2
        new = []
        for j in range(n):
            z = zx_b[j, s]
            for k in range(n):
                z = z + jnp.dot(
                    bufs[slot, j, k],
                    w_b[j, k],
                    preferred_element_type=jnp.float32,
                )
            g = [z[:, q * hb : (q + 1) * hb] for q in range(GATES)]
            cj = jax.nn.sigmoid(g[1]) * c[j] + jax.nn.sigmoid(g[0]) * jnp.tanh(g[2])
            new.append((jax.nn.sigmoid(g[3]) * jnp.tanh(cj), cj))
        for j, (h, _) in enumerate(new):
            for peer in range(n):  # the DSMEM write of block j into block `peer`
                bufs = bufs.at[1 - slot, peer, j].set(h.astype(dtype))
        c = jnp.stack([cj for _, cj in new])
        outs.append(jnp.stack([h for h, _ in new]))
    return jnp.stack(outs, axis=1).reshape(n * steps, *outs[0].shape[1:]), c


def _problem(steps, batch, hidden, seed=0):
    """Random projected inputs `(t, b, 4h)`, `W_h` `(h, 4h)`, `h0`, `c0` `(b, h)`."""
    k = jax.random.split(jax.random.key(seed), 4)
    zx = jax.random.normal(k[0], (steps, batch, GATES * hidden))
    w_h = jax.random.normal(k[1], (hidden, GATES * hidden)) / np.sqrt(hidden)
    h0 = 0.5 * jax.random.normal(k[2], (batch, hidden))
    c0 = 0.5 * jax.random.normal(k[3], (batch, hidden))
    return zx, w_h, h0, c0


# --------------------------------------------------------------------------- runners


def _short(e, limit=300):
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= limit else text[:limit] + " ..."


def _ptxas_line():
    """Registers, spills and barriers from the newest ptxas report in the dump."""
    reports = sorted(glob.glob(os.path.join(DUMP, "*.ptxas")), key=os.path.getmtime)
    if not reports:
        return ""
    with open(reports[-1]) as f:
        text = f.read()
    used = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if "Used" in ln]
    spill = [ln.strip() for ln in text.splitlines() if "spill" in ln]
    return "; ".join(used + spill[:1])


def compile_rows(target_path):
    """Compile every probe for the GPU in `target_path` without a device."""
    from jax.experimental import topologies

    with open(target_path) as f:
        config = f.read()
    topo = topologies.get_topology_desc(
        "x", "cuda", target_config=config, topology="1x1x1"
    )
    sharding = jax.sharding.SingleDeviceSharding(topo.devices[0])
    print(f"target: {topo.devices[0].device_kind}")

    def abstract(shape, dtype=jnp.float32):
        return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)

    cases = [("exchange", n, None, None, None, None, None) for n in (2, 4, 8, 16)]
    bf16, f32 = jnp.bfloat16, jnp.float32
    for hidden, n, dtype, batch, buffers, *zx in [
        (128, 4, bf16, 64, 2),
        (128, 8, bf16, 64, 2),
        (256, 8, bf16, 64, 2),
        (256, 16, bf16, 64, 2),
        (256, 8, bf16, 256, 2),
        (512, 8, bf16, 64, 1),
        (512, 16, bf16, 64, 2),
        (512, 16, bf16, 64, 1),
        (512, 16, bf16, 64, 1, bf16),
        (128, 4, f32, 64, 2),
        (128, 8, f32, 64, 2),
        (256, 8, f32, 64, 1),
        (256, 16, f32, 64, 2),
        (512, 16, f32, 64, 1),
    ]:
        cases.append(("lstm", n, hidden, dtype, batch, buffers, (zx or [f32])[0]))
    rows = []
    for kind, n, hidden, dtype, batch, buffers, zx_dtype in cases:
        if kind == "exchange":
            label = f"exchange n={n}"
            fn, args = exchange_kernel(n), (abstract((n, 128)),)
        else:
            hb, name = hidden // n, jnp.dtype(dtype).name
            size = jnp.dtype(dtype).itemsize
            smem = (GATES * hidden * hb + buffers * 64 * hidden) * size
            smem += 64 * GATES * hb * jnp.dtype(zx_dtype).itemsize + 64 * hb * 4
            label = f"lstm H={hidden} n={n} B={batch} {name} buffers={buffers}"
            if zx_dtype != f32:
                label += f" zx={jnp.dtype(zx_dtype).name}"
            label += f" smem~{smem >> 10}KiB"
            fn = cluster_lstm(
                8, batch, hidden, n, dtype, buffers=buffers, zx_dtype=zx_dtype
            )
            w_shape = (n, n, hb, GATES * hb) if size == 2 else (n, n, GATES * hb, hb)
            args = (
                abstract((n * 8, batch, GATES * hb), zx_dtype),
                abstract(w_shape, dtype),
                abstract((n, batch, hb), dtype),
                abstract((n, batch, hb)),
            )
        t0 = time.time()
        try:
            compiled = jax.jit(fn).lower(*args).compile()
            held = "mosaic_gpu" in compiled.as_text()
            rows.append(
                (label, f"OK {time.time() - t0:.1f}s kernel={held}", _ptxas_line())
            )
        except Exception as e:  # report every compiler error
            rows.append((label, "FAIL", _short(e)))
        print(" | ".join(rows[-1]), flush=True)
    return rows


INTERPRET_CASES = [
    # (kernel, interpreter, H, n, dtype, buffers)
    ("exchange", "gpu", None, 4, None, None),
    ("exchange", "true", None, 4, None, None),
    ("cluster", "gpu", 128, 4, "bfloat16", 2),
    ("cluster", "true", 128, 4, "bfloat16", 2),
    ("warpgroups", "gpu", 128, 4, "bfloat16", 2),
    ("warpgroups", "gpu", 128, 4, "bfloat16", 1),
    ("warpgroups", "gpu", 64, 2, "bfloat16", 2),
    ("warpgroups", "gpu", 128, 4, "float32", 2),
]


def interpret_row(case):
    """One interpreter attempt, run in this process (called in a subprocess).

    Returns the maximum absolute error against the reference, and for the GPU
    interpreter whether its race detector found a race.
    """
    from jax._src.pallas.mosaic_gpu.interpret import gpu_callbacks
    from jax._src.pallas.mosaic_gpu.interpret.params import InterpretGPUParams

    kernel, mode, hidden, n, dtype, buffers = INTERPRET_CASES[case]
    interp = InterpretGPUParams(detect_races=True) if mode == "gpu" else True
    if kernel == "exchange":
        x = jnp.arange(n * 128, dtype=jnp.float32).reshape(n, 128)
        err = jnp.max(jnp.abs(exchange_kernel(n, interpret=interp)(x) - x[None]))
    else:
        steps, batch = 4, 64
        zx, w_h, h0, c0 = _problem(steps, batch, hidden)
        blocks = to_blocks(zx, w_h, h0, c0, n, dtype)
        fn = cluster_lstm(
            steps,
            batch,
            hidden,
            n,
            dtype,
            buffers=buffers,
            warpgroups=kernel == "warpgroups",
            interpret=interp,
        )
        hs_b, c_b = fn(*blocks)
        hs, c = reference(zx, w_h, h0, c0, dtype)
        err = max(
            jnp.max(jnp.abs(from_blocks(hs_b, n) - hs)),
            jnp.max(jnp.abs(from_blocks(c_b, n) - c[None])),
        )
    races = gpu_callbacks.get_races().races_found if mode == "gpu" else None
    return f"{float(err):.1e} races={races}"


def interpret_rows():
    """Each interpreter attempt in its own process; the error's last line if any."""
    rows = []
    for case, (kernel, mode, hidden, n, dtype, buffers) in enumerate(INTERPRET_CASES):
        how = "InterpretGPUParams" if mode == "gpu" else "interpret=True"
        label = f"interpret {kernel} n={n} ({how})"
        if hidden:
            label += f" H={hidden} B=64 T=4 {dtype} buffers={buffers}"
        proc = subprocess.run(
            [sys.executable, __file__, "--interpret", str(case)],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "JAX_PLATFORMS": "cpu"},
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if lines:
            rows.append((label, "RAN", "max |error| " + lines[-1].split(" ", 1)[1]))
        else:
            errs = [
                ln
                for ln in proc.stderr.splitlines()
                if "Error" in ln and not ln.startswith(" ")
            ]
            rows.append(
                (label, "FAIL", (errs[-1] if errs else proc.stderr[-300:])[:300])
            )
        print(" | ".join(rows[-1]), flush=True)
    return rows


def emulate_rows():
    """The decomposition against the plain LSTM on the CPU."""
    rows = []
    for hidden, n, dtype in [
        (128, 4, jnp.float32),
        (128, 8, jnp.bfloat16),
        (256, 8, jnp.float32),
    ]:
        zx, w_h, h0, c0 = _problem(6, 16, hidden)
        hs_b, c_b = emulate(*to_blocks(zx, w_h, h0, c0, n, dtype))
        hs, c = reference(zx, w_h, h0, c0, dtype)
        err = max(
            float(jnp.max(jnp.abs(from_blocks(hs_b, n) - hs))),
            float(jnp.max(jnp.abs(from_blocks(c_b, n) - c[None]))),
        )
        label = f"emulate H={hidden} n={n} B=16 T=6 {jnp.dtype(dtype).name}"
        rows.append(
            (label, "OK" if err < 1e-4 else "MISMATCH", f"max |error| {err:.1e}")
        )
        print(" | ".join(rows[-1]), flush=True)
    return rows


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--interpret":
        print("RESULT", interpret_row(int(sys.argv[2])))
        return
    target = sys.argv[1] if len(sys.argv) > 1 else "benchmarks/targets/h200.pbtxt"
    rows = emulate_rows() + interpret_rows() + compile_rows(target)
    print("\n| probe | result | detail |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(r.replace("|", "/") for r in row) + " |")


if __name__ == "__main__":
    main()
