"""Named training recipes: what trains, where the negatives come from and the settings, measured as a whole.

A :class:`Recipe` is the one table that ``fit(recipe=...)``, ``train_collection(recipe=...)`` and ``pt-dense train
--recipe`` read. Settings given explicitly win over the recipe's. The figures in each recipe's ``measured`` come from
``python examples/recipes.py`` (MiniLM on SciFact train, this project's 2-core reference machine); they describe
that run, not a promise for another model or collection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pt_dense.encoders.adapters import adapter_kind
from pt_dense.errors import InputError
from pt_dense.registry import Registry


@dataclass(frozen=True)
class Recipe:
    """A named way to train: ``adapter`` (a name of ``pt_dense.encoders.adapters.ADAPTERS``: ``"lora"``,
    ``"prompts"`` or ``"full"`` for every weight, ``"none"`` read as ``"full"``) with ``lora``
    settings (``with_lora``'s), ``negatives`` (a name of ``pt_dense.training.sources``) and ``settings`` (``fit``'s)."""

    name: str
    summary: str
    adapter: str = "full"
    negatives: str = "in-batch"
    settings: dict = field(default_factory=dict)
    lora: dict = field(default_factory=dict)
    measured: str = ""

    def __post_init__(self):
        try:
            object.__setattr__(self, "adapter", adapter_kind(self.adapter))
        except InputError as err:
            raise InputError(f"recipe {self.name!r}: {err}") from err

    def check(self, encoder) -> None:
        """Refuse an encoder whose trainable part is not the recipe's (a LoRA learning rate on every weight would
        wreck the model), naming how to build the right one."""
        if encoder.mode != self.adapter:
            build = {"lora": f".with_lora(**{self.lora})", "prompts": ".with_prompts()",
                     "full": " (a plain encoder, no adapter)"}.get(self.adapter, f".with_adapter(<{self.adapter}>)")
            raise InputError(f"recipe {self.name!r} trains {self.adapter}, but this encoder is "
                             f"{encoder.mode}: start from BiEncoder.from_pretrained(...){build}, or use "
                             f"train_collection / pt-dense train --recipe {self.name}, which builds it")


#: recipes by name
RECIPES: Registry[Recipe] = Registry("recipe")


def register_recipe(recipe: Recipe) -> Recipe:
    """Make ``recipe`` known by its name.

    Args:
        recipe: The recipe.

    Returns:
        ``recipe`` itself.

    Raises:
        InputError: Its name is registered already.
    """
    return RECIPES.register(recipe.name, recipe)


def get_recipe(recipe: str | Recipe) -> Recipe:
    """The recipe named ``recipe`` (or ``recipe`` itself).

    Args:
        recipe: A recipe or a registered recipe's name.

    Returns:
        The recipe.

    Raises:
        InputError: An unknown name.
    """
    return recipe if isinstance(recipe, Recipe) else RECIPES[recipe]


for _recipe in (
    Recipe("full-dense-negatives", "every weight, three hard negatives a query from the starting encoder's dense index",
           adapter="full", negatives="cache:stale",
           settings={"epochs": 3, "batch_size": 32, "n_negatives": 3, "doc_max_length": 128, "lr": 3e-5},
           measured="MiniLM: SciFact test nDCG@10 0.7315 (frozen 0.6456), out-of-domain mean 0.4312 (frozen 0.4396: "
                    "it loses 0.008 out of domain); 12.8 minutes of training"),
    Recipe("full-distill", "every weight, three hard negatives a query from the BM25 + dense hybrid, whose fused "
           "scores teach (contrastive + listwise KL)", adapter="full", negatives="hybrid",
           settings={"epochs": 3, "batch_size": 32, "n_negatives": 3, "doc_max_length": 128, "loss": "distill",
                     "negative_depth": 30},
           measured="MiniLM: SciFact test nDCG@10 0.6927, below full-dense-negatives; 15.7 minutes of training"),
    Recipe("lora-all-linear", "LoRA r=16 on every linear layer, three hard negatives a query from the starting "
           "encoder's dense index, half of the learned update kept (WiSE-FT)", adapter="lora", negatives="cache:stale",
           settings={"epochs": 3, "batch_size": 32, "n_negatives": 3, "doc_max_length": 128, "lr": 3e-4,
                     "interpolate": 0.5},
           lora={"r": 16, "alpha": 32, "targets": "all-linear"},
           measured="MiniLM: SciFact test nDCG@10 0.6812 (frozen 0.6456), out-of-domain mean 0.4443 (frozen 0.4396); "
                    "26.0 minutes of training (the whole update: 0.6947 and 0.4333)"),
):
    register_recipe(_recipe)
