"""Tiny random models of every supported family, built in memory from their configs, each with a tokenizer of its
family's kind (WordPiece, byte-level BPE, Unigram) trained in memory by ``tokenizers`` on a few hundred sentences."""

from __future__ import annotations

import functools
import random

from conftest import WORDS

FAMILIES = ("bert", "distilbert", "roberta", "xlm-roberta", "mpnet", "modernbert")

#: the special tokens each family's real tokenizer uses: (start, end, pad, unk, mask), in id order where it matters
SPECIAL = {
    "bert": ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"),
    "distilbert": ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"),
    "roberta": ("<s>", "</s>", "<pad>", "<unk>", "<mask>"),
    "xlm-roberta": ("<s>", "</s>", "<pad>", "<unk>", "<mask>"),
    "mpnet": ("<s>", "</s>", "<pad>", "[UNK]", "<mask>"),
    "modernbert": ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"),
}
#: the tokenizer model of each family's real tokenizer
KIND = {"bert": "wordpiece", "distilbert": "wordpiece", "roberta": "bpe", "xlm-roberta": "unigram",
        "mpnet": "wordpiece", "modernbert": "bpe"}


def sentences(n: int = 300, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    extra = ["Über", "café", "naïve", "COVID-19", "p53", "DNA", "mRNA", "ß", "日本", "α-helix", "(a)", "e.g.", "1,000"]
    return [" ".join(rng.choice(WORDS + extra) for _ in range(rng.randint(3, 14))) for _ in range(n)]


@functools.cache
def tiny_tokenizer(family: str):
    """A fast tokenizer of ``family``'s kind, trained on :func:`sentences`, with its special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    start, end, pad, unk, mask = SPECIAL[family]
    # RoBERTa-like vocabularies put <s>, <pad>, </s>, <unk> first; BERT-like ones [PAD], [UNK], [CLS], [SEP], [MASK]
    order = [start, pad, end, unk, mask] if start == "<s>" else [pad, unk, start, end, mask]
    kind = KIND[family]
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=unk))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=order)
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=None))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=order,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=200, special_tokens=order, unk_token=unk)
    tok.train_from_iterator(sentences(), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{start} $A {end}", pair=f"{start} $A {end} {end} $B {end}",
        special_tokens=[(t, tok.token_to_id(t)) for t in (start, end)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=start, eos_token=end, cls_token=start,
                                   sep_token=end, pad_token=pad, unk_token=unk, mask_token=mask)


def tiny_config(family: str, layers: int = 2):
    """A small config of ``family`` (hidden 32, 2 heads, 64 positions) sized to its tiny tokenizer."""
    import transformers as tf

    tokenizer = tiny_tokenizer(family)
    common = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
              "max_position_embeddings": 66}
    if family == "distilbert":
        return tf.DistilBertConfig(dim=32, n_layers=layers, n_heads=2, hidden_dim=64, **common)
    classes = {"bert": tf.BertConfig, "roberta": tf.RobertaConfig, "xlm-roberta": tf.XLMRobertaConfig,
               "mpnet": tf.MPNetConfig, "modernbert": tf.ModernBertConfig}
    extra = {}
    if family == "modernbert":
        extra = {"bos_token_id": tokenizer.cls_token_id, "eos_token_id": tokenizer.sep_token_id,
                 "cls_token_id": tokenizer.cls_token_id, "sep_token_id": tokenizer.sep_token_id,
                 "local_attention": 16}
    elif family in ("roberta", "xlm-roberta", "mpnet"):
        extra = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    return classes[family](hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                           **common, **extra)


def tiny_model(family: str, seed: int = 0, layers: int = 2):
    """(random model, tokenizer) of ``family``."""
    import torch
    from transformers import AutoModel

    torch.manual_seed(seed)
    return AutoModel.from_config(tiny_config(family, layers)), tiny_tokenizer(family)
