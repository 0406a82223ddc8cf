"""Network benchmark: for each variant, parameters, multiply-adds, CPU milliseconds per image at batch 1 (at the
variant's input size), and on a GPU images per second at batch 256 in bf16 with channels_last, with and without
torch.compile.

    python scripts/bench_network.py [--variants mlanet_r50,mlanet_r18,mlanet_dw] [--weights FILE ...]
                                    [--gpu-batch 256] [--no-compile]

--weights times the networks checkpoint files hold, as their own configs build them (the shipped mlanet_dw.pt is
the variant grown to stage depths 2-3-4-3).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from backend.network.checkpoint import load_network
from backend.network.complexity import complexity
from backend.network.mlanet import create_network


def cpu_ms(net, repeats: int = 10) -> float:
    s = net.cfg.image_size
    x = torch.rand(1, 3, s, s)
    with torch.inference_mode():
        for _ in range(3):
            net(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


def gpu_images_per_s(net, batch: int, compiled: bool, repeats: int = 20) -> float:
    s = net.cfg.image_size
    net = net.cuda().to(memory_format=torch.channels_last)
    run = torch.compile(net.forward_features) if compiled else net.forward_features
    x = torch.rand(batch, 3, s, s, device="cuda").to(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        for _ in range(5):
            net.forward_head(*run(x))
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            net.forward_head(*run(x))
        torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="mlanet_r50,mlanet_r18,mlanet_dw")
    parser.add_argument("--weights", nargs="*", default=[])
    parser.add_argument("--gpu-batch", type=int, default=256)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    print(f"CPU threads: {torch.get_num_threads()}; GPU: "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    nets = [(name, create_network(name)) for name in args.variants.split(",") if name]
    nets += [(Path(f).name, load_network(f)) for f in args.weights]
    for name, net in nets:
        net = net.eval()
        params, macs = complexity(net)
        line = f"{name:12s} {params / 1e6:6.1f} M params {macs / 1e9:6.2f} GMACs  CPU {cpu_ms(net):7.1f} ms/image"
        if torch.cuda.is_available():
            line += f"  GPU bf16 b{args.gpu_batch}: {gpu_images_per_s(net, args.gpu_batch, False):8.0f} img/s"
            if not args.no_compile:
                line += f", compiled {gpu_images_per_s(net, args.gpu_batch, True):8.0f} img/s"
        print(line, flush=True)


if __name__ == "__main__":
    main()
