"""The word-level tokenizer: ids, normalisation, framing, padding, truncation, save/load, unknown words."""

from __future__ import annotations

from transformers import AutoTokenizer

from kaiga.text.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, build_word_tokenizer, unknown_words


def tokenizer(max_length: int = 6):
    return build_word_tokenizer({"red", "car", "Blue"}, max_length=max_length)


def test_special_tokens_come_first_then_the_sorted_lower_cased_words_and_punctuation():
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    vocab = tokenizer().get_vocab()
    assert sorted(vocab, key=vocab.get) == ["<pad>", "<unk>", "<bos>", "<eos>",
                                            "&", ",", "-", ".", "blue", "car", "red"]


def test_a_prompt_is_normalised_split_at_punctuation_and_framed():
    tok = tokenizer()
    # NFKC folds the full-width letters, everything is lower-cased, the comma is a token of its own
    assert tok("RED car,ｂｌｕｅ")["input_ids"] == [BOS_ID, 10, 9, 5, 8, EOS_ID]
    assert tok("a red zebra")["input_ids"] == [BOS_ID, UNK_ID, 10, UNK_ID, EOS_ID]


def test_padding_and_truncation_keep_the_frame():
    tok = tokenizer(max_length=6)
    assert tok("red", padding="max_length", truncation=True)["input_ids"] == [BOS_ID, 10, EOS_ID, PAD_ID, PAD_ID, PAD_ID]
    # too long: cut inside, <eos> kept last (the pooled text state is read there)
    assert tok("red car red car red car", padding="max_length", truncation=True)["input_ids"] == [
        BOS_ID, 10, 9, 10, 9, EOS_ID]


def test_saved_in_the_transformers_format_it_loads_with_auto_tokenizer(tmp_path):
    tok = tokenizer()
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    prompt = "Blue car, red & zebra."
    assert again(prompt)["input_ids"] == tok(prompt)["input_ids"] == [BOS_ID, 8, 9, 5, 10, 4, UNK_ID, 7, EOS_ID]
    assert again.model_max_length == 6 and again.pad_token_id == PAD_ID


def test_unknown_words_are_named_as_written():
    tok = tokenizer()
    assert unknown_words(tok, "a red Zebra-car") == ["a", "Zebra"]
    assert unknown_words(tok, "red car") == []


def test_a_tokenizer_without_an_unknown_token_knows_every_word():
    class Bpe:  # CLIP's BPE splits any word into known pieces: it has no unknown token
        unk_token_id = None

    assert unknown_words(Bpe(), "a zebra") == []
