"""A word-level tokenizer fitted to a caption vocabulary, saved so `AutoTokenizer` loads it.

Real Stable Diffusion folders carry CLIP's 49,408-token BPE tokenizer; most of a small text encoder's
parameters would then sit in an embedding table of words that our captions never use. A word-level
vocabulary keeps the default model small, and because it is saved in the transformers format, our
folders and real ones load through the same `AutoTokenizer.from_pretrained` call. Unknown words map
to `<unk>`, which lets the studio name them in a warning.

Example:
    >>> tok = build_word_tokenizer({"red", "car"}, max_length=8)
    >>> tok.convert_ids_to_tokens(tok("A red zebra")["input_ids"])
    ['<bos>', '<unk>', 'red', '<unk>', '<eos>']
    >>> unknown_words(tok, "A red zebra")
    ['A', 'zebra']
    >>> unknown_words(tok, "a (red:1.3) [car]")  # A1111's weighting syntax is no words
    ['a']
"""

from __future__ import annotations

from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from kaiga.text.prompt_weights import plain_text

SPECIAL = ("<pad>", "<unk>", "<bos>", "<eos>")
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)


def build_word_tokenizer(words: set[str], max_length: int = 32) -> PreTrainedTokenizerFast:
    """A lower-casing tokenizer over `words` plus punctuation, with `<bos> ... <eos>` framing."""
    vocab = {t: i for i, t in enumerate(SPECIAL)}
    for w in sorted(words | {",", "-", ".", "&"}):
        vocab.setdefault(w.lower(), len(vocab))
    core = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    core.pre_tokenizer = pre_tokenizers.Whitespace()  # words and runs of punctuation
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", BOS_ID), ("<eos>", EOS_ID)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=max_length,
    )


def unknown_words(tokenizer, prompt: str) -> list[str]:
    """Words of `prompt` that the tokenizer maps to its unknown token (empty for BPE tokenizers).

    The prompt is read as the text encoder reads it, without its weighting syntax (`(red:1.3)` is `red`).
    """
    unk = tokenizer.unk_token_id
    if unk is None:
        return []
    prompt = plain_text(prompt)
    enc = tokenizer(prompt, return_offsets_mapping=True, add_special_tokens=False)
    return [prompt[a:b] for tid, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]) if tid == unk]
