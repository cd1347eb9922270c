"""Deep prompt tuning (P-tuning v2, as in DPTDR): trainable key/value prefixes in every layer of a frozen model.

The prefixes reach the model as a ``DynamicCache`` holding, for each layer, ``length`` key and value vectors per
head, passed through the keyword its :class:`~pt_dense.models.ModelFamily` names (``cache``); the attention mask is
widened by ``length`` (every token sees the prefix) and ``position_ids`` are given explicitly as ``0..L-1`` shifted
by the family's first position (``pad_token_id + 1`` for RoBERTa and XLM-R), so the real tokens keep the positions
the model was pretrained with (peft's prefix tuning shifts them by the prefix length, which is why it is not used
here). A family that takes no cache refuses prompts instead of training prompts that change nothing.

Initialisation is near the identity: keys and values start at zero, so each prefix slot receives a small attention
weight and contributes a zero value; the prompted model starts where the frozen model is and training moves it.
With ``reparam=True`` the prefixes come from an embedding through a two-layer MLP (DPTDR's optional
reparameterisation), whose output layer starts at zero for the same reason.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import DynamicCache

from pt_dense.models import family_for


class DeepPrompts(nn.Module):
    """The trainable prefixes of one task: ``key_values()`` is (layers, 2, heads, length, head_dim)."""

    def __init__(self, layers: int, heads: int, head_dim: int, length: int, reparam: bool = False,
                 reparam_hidden: int = 512):
        super().__init__()
        self.shape = (layers, 2, heads, length, head_dim)
        self.length, self.reparam = length, reparam
        if reparam:
            self.embedding = nn.Embedding(length, heads * head_dim)
            self.mlp = nn.Sequential(nn.Linear(heads * head_dim, reparam_hidden), nn.Tanh(),
                                     nn.Linear(reparam_hidden, layers * 2 * heads * head_dim))
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)
        else:
            self.prefix = nn.Parameter(torch.zeros(self.shape))

    @classmethod
    def for_model(cls, config, length: int, reparam: bool = False) -> DeepPrompts:
        heads = config.num_attention_heads
        return cls(config.num_hidden_layers, heads, config.hidden_size // heads, length, reparam)

    def key_values(self) -> torch.Tensor:
        if not self.reparam:
            return self.prefix
        layers, _, heads, length, head_dim = self.shape
        flat = self.mlp(self.embedding.weight)  # (length, layers * 2 * heads * head_dim)
        return flat.view(length, layers, 2, heads, head_dim).permute(1, 2, 3, 0, 4)

    def config(self) -> dict:
        return {"length": self.length, "reparam": self.reparam, "shape": list(self.shape)}


class PromptedModel(nn.Module):
    """A frozen Hugging Face encoder that runs with deep prompts; called like the model it wraps."""

    def __init__(self, base: nn.Module, prompts: DeepPrompts):
        super().__init__()
        family = family_for(base)
        family.check_prompts()
        self.base = base
        self.prompts = prompts
        self.argument = family.prompt_argument
        self.offset = family.position_offset(base.config)
        for p in self.base.parameters():
            p.requires_grad_(False)

    @property
    def config(self):
        return self.base.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs):
        batch, length = input_ids.shape
        kv = self.prompts.key_values()
        cache = DynamicCache(config=self.base.config)
        for layer in range(kv.shape[0]):
            cache.update(kv[layer, 0].unsqueeze(0).expand(batch, -1, -1, -1),
                         kv[layer, 1].unsqueeze(0).expand(batch, -1, -1, -1), layer)
        prefix_mask = torch.ones(batch, self.prompts.length, dtype=attention_mask.dtype, device=attention_mask.device)
        positions = torch.arange(self.offset, self.offset + length, device=input_ids.device)
        return self.base(input_ids=input_ids, attention_mask=torch.cat([prefix_mask, attention_mask], dim=1),
                         position_ids=positions.unsqueeze(0).expand(batch, -1), use_cache=False,
                         **{self.argument: cache}, **kwargs)


def prompt_state(model: PromptedModel) -> dict[str, torch.Tensor]:
    """The prompts' weights alone (what a prompt-tuned encoder saves)."""
    return {k: v.detach().clone() for k, v in model.prompts.state_dict().items()}
