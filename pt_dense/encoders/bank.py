"""A prompt bank: one frozen backbone in memory serving several tasks, each adding only its deep prompts (DPTDR)."""

from __future__ import annotations

import copy

from pt_dense.encoders.adapters import Prompts
from pt_dense.encoders.prompts import PromptedModel
from pt_dense.encoders.torch_encoder import TorchEncoder
from pt_dense.errors import InputError
from pt_dense.io.hashing import state_hash


class PromptBank:
    """One frozen backbone in memory serving several tasks, each adding only its deep prompts.

    ``bank.add("scifact", encoder_or_folder)`` takes the prompts of an encoder trained with
    :meth:`~pt_dense.TorchEncoder.with_prompts` on the same backbone (checked by hash); ``bank.task("scifact")`` is
    that task's encoder, with every PyTerrier stage of a BiEncoder. Tasks share the backbone's weights and never
    touch each other's prompts, so adding a task leaves every other task's vectors exactly as they were.
    """

    def __init__(self, base: TorchEncoder):
        """Hold a frozen copy of ``base``'s model as the shared backbone.

        Args:
            base: A plain encoder (no adapter).

        Raises:
            InputError: ``base`` carries an adapter.
        """
        if not base.adapter.plain:
            raise InputError(f"a prompt bank starts from a plain encoder, not one with an adapter ({base.mode})")
        self.base = base
        self.backbone = copy.deepcopy(base.model).eval()
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self._backbone_hash = state_hash(self.backbone.state_dict())
        self._tasks: dict[str, TorchEncoder] = {}

    def add(self, name: str, source) -> None:
        """Add (or replace) task ``name`` from a prompt-tuned BiEncoder or a folder saved from one.

        Args:
            name: The task's name.
            source: A prompt-tuned encoder, or a folder saved from one.

        Raises:
            InputError: The encoder is not prompt-tuned, or was trained on another backbone.
        """
        encoder = source if isinstance(source, TorchEncoder) else type(self.base).from_pretrained(source)
        if not isinstance(encoder.adapter, Prompts):
            raise InputError(f"task {name!r}: the encoder is not prompt-tuned (mode {encoder.mode!r}); "
                             "train one with BiEncoder.with_prompts()")
        if state_hash(encoder.model.base.state_dict()) != self._backbone_hash:
            raise InputError(f"task {name!r} was trained on another backbone than this bank's {self.base.name!r}")
        prompts = copy.deepcopy(encoder.model.prompts).to(self.base.device).eval()
        for p in prompts.parameters():
            p.requires_grad_(False)
        self._tasks[name] = encoder.with_model(PromptedModel(self.backbone, prompts), encoder.adapter)

    def task(self, name: str) -> TorchEncoder:
        """The encoder of task ``name``.

        Args:
            name: A task added with :meth:`add`.

        Returns:
            The bank's backbone with that task's prompts.

        Raises:
            InputError: No such task.
        """
        if name not in self._tasks:
            raise InputError(f"no task {name!r} in this bank; its tasks: {sorted(self._tasks)}")
        return self._tasks[name]

    def tasks(self) -> list[str]:
        """The names of the tasks, sorted.

        Returns:
            The task names.
        """
        return sorted(self._tasks)

    def __repr__(self) -> str:
        return f"PromptBank({self.base.name!r}, tasks={self.tasks()})"

