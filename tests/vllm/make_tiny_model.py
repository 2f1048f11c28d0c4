"""Write a tiny random Llama model (tokenizer, chat template, weights) for the vLLM tests.

Runs INSIDE the vLLM venv, not the project's:

    $RATCHET_VLLM_PYTHON tests/vllm/make_tiny_model.py OUTDIR

Deterministic: the same OUTDIR content (up to safetensors metadata) on every run. The model's
answers are noise; it exists to exercise the serving path. Shape notes: head_dim must be 64
(hidden 128 / 2 heads); head_dim 16 crashes vLLM's CPU attention kernel.
"""

from __future__ import annotations

import sys
from pathlib import Path

SEED = 0
CORPUS = [
    "You are a helpful assistant. Answer briefly.",
    "def add(a, b):\n    return a + b\n",
    'Call the tool with {"name": "run_tests", "arguments": {"path": "tests/"}}.',
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "system user assistant tool: results, errors, passed, failed.",
    "[{'role': 'user', 'content': 'Hello!'}] -> Hi! How can I help?",
]
SPECIAL = ["<|bos|>", "<|eos|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>", "<|end|>"]
# Plain added tokens (not special): the hermes tool parser finds them in decoded text.
TOOL_TOKENS = ["<tool_call>", "</tool_call>"]

# Renders system/user/assistant/tool messages, assistant tool calls (hermes style) and `tools`.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if tools %}<|system|>Tools: {{ tools | tojson }}<|end|>\n{% endif %}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% elif message['content'] %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% for call in message.get('tool_calls') or [] %}<tool_call>"
    '{"name": {{ call["function"]["name"] | tojson }}, "arguments": '
    "{% if call['function']['arguments'] is string %}{{ call['function']['arguments'] }}"
    "{% else %}{{ call['function']['arguments'] | tojson }}{% endif %}}</tool_call>{% endfor %}"
    "<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def make_tokenizer():
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TOOL_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        model_max_length=512,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_model(vocab_size: int, bos: int, eos: int, pad: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    return model.to(torch.float16)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: make_tiny_model.py OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer()
    vocab = len(tokenizer)
    model = make_model(vocab, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
