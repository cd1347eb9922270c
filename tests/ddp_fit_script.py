"""Run by test_training under `torchrun --nproc_per_node=2`: BiEncoder.fit in two processes (gloo)."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from test_training import DOCS, QRELS, TOPICS, no_dropout_encoder

encoder = no_dropout_encoder().with_lora(r=2)
history = encoder.fit(TOPICS, QRELS, corpus=DOCS, epochs=2, batch_size=4, lr=1e-2, progress=False)
weights = torch.cat([p.detach().flatten() for p in encoder.model.parameters() if p.requires_grad])
gathered = [torch.zeros_like(weights) for _ in range(dist.get_world_size())]
dist.all_gather(gathered, weights)
in_sync = all(torch.equal(gathered[0], g) for g in gathered)
report = Path(sys.argv[1]) / f"rank{dist.get_rank()}.txt"  # a file each: the ranks' stdout would interleave
report.write_text(f"steps {len(history['loss'])} in_sync {in_sync}")
# No destroy_process_group here: fit opened the group, so fit's atexit hook must close it (an open gloo group at
# interpreter finalisation can abort a rank with SIGABRT).
