"""Prompts longer than CLIP's window, handled the way AUTOMATIC1111 does: the text is cut into
chunks of 75 tokens, each chunk is encoded on its own between the start and end tokens (77 in
all), and the embeddings are joined along the sequence. The negative prompt gets the same
number of chunks, so classifier-free guidance compares like with like. Without this,
diffusers cuts a prompt at 77 tokens and says nothing."""

from __future__ import annotations

import math


def token_count(pipe, text: str) -> int:
    return len(pipe.tokenizer(text or "", add_special_tokens=False, truncation=False).input_ids)


def chunked_embeds(pipe, prompts: list[str], negatives: list[str]):
    """(prompt_embeds, negative_prompt_embeds) for prompts of which one is over the window, or
    None when every prompt fits it (the pipeline's own encoding is then used, unchanged)."""
    import torch

    tok, encoder = pipe.tokenizer, pipe.text_encoder
    size = tok.model_max_length - 2
    ids = [tok(p or "", add_special_tokens=False, truncation=False).input_ids for p in prompts]
    neg = [tok(n or "", add_special_tokens=False, truncation=False).input_ids for n in negatives]
    if max(len(x) for x in ids + neg) <= size:
        return None
    chunks = max(math.ceil(len(x) / size) for x in ids + neg)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def encode(seq: list[int]):
        parts = []
        for c in range(chunks):
            piece = seq[c * size:(c + 1) * size]
            window = [tok.bos_token_id, *piece, tok.eos_token_id] + [pad] * (size - len(piece))
            with torch.no_grad():
                parts.append(encoder(torch.tensor([window], device=encoder.device))[0])
        return torch.cat(parts, dim=1)

    return torch.cat([encode(x) for x in ids]), torch.cat([encode(x) for x in neg])
