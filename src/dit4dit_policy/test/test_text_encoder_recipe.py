"""
cosmos_reason1 encodes instructions as the pretrained Cosmos cross-attention saw them.

The reference is diffusers' own ``Cosmos2_5_PredictBasePipeline._get_prompt_embeds`` (the code the
pretrained model and DiT4DiT's feature extractor use), called on a tiny random Qwen2.5-VL built
here from transformers' config classes, with a word-level tokenizer carrying a Qwen-style chat
template: no download, the real call path.
"""

import types

from dit4dit_policy.model import preset
from dit4dit_policy.model.text_encoder import (
    CosmosReasonEncoder, InstructionCache, make_text_encoder, MissingEmbedding,
    standardise_and_concat)
import pytest
import torch

LAYERS, WIDTH, TOKENS = 3, 32, 40
SYSTEM = 'You are a helpful assistant who will provide prompts to an image generator.'
TEMPLATE = (
    '{% for m in messages %}<|im_start|>{{ m.role }} '
    '{% if m.content is string %}{{ m.content }}{% else %}{% for c in m.content %}'
    '{% if c.type == "text" %}{{ c.text }}{% endif %}{% endfor %}{% endif %}'
    ' <|im_end|> {% endfor %}{% if add_generation_prompt %}<|im_start|>assistant {% endif %}')


def make_tiny_qwen(directory, padding_side='right', template=TEMPLATE, seed=0):
    """Write a random 3-layer Qwen2.5-VL and its tokenizer to ``directory``; return it."""
    from tokenizers import models, pre_tokenizers, Tokenizer
    from transformers import (PreTrainedTokenizerFast, Qwen2_5_VLConfig,
                              Qwen2_5_VLForConditionalGeneration)

    words = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '[UNK]', 'system', 'user',
             'assistant'] + SYSTEM.split() + 'pick up the red green cube and open drawer'.split()
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token='[UNK]'))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token='<|endoftext|>', eos_token='<|im_end|>',
        unk_token='[UNK]', padding_side=padding_side,
        additional_special_tokens=['<|im_start|>', '<|im_end|>'])
    tokenizer.chat_template = template
    config = Qwen2_5_VLConfig(
        text_config={'vocab_size': 64, 'hidden_size': WIDTH, 'intermediate_size': 64,
                     'num_hidden_layers': LAYERS, 'num_attention_heads': 4,
                     'num_key_value_heads': 2, 'max_position_embeddings': 128,
                     'bos_token_id': 0, 'eos_token_id': 2, 'pad_token_id': 0,
                     'rope_scaling': {'type': 'mrope', 'mrope_section': [2, 1, 1]}},
        vision_config={'depth': 1, 'hidden_size': 16, 'intermediate_size': 32, 'num_heads': 2,
                       'out_hidden_size': WIDTH, 'fullatt_block_indexes': [0]})
    torch.manual_seed(seed)
    Qwen2_5_VLForConditionalGeneration(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def text_config(path, **extra):
    overrides = ['text.encoder=cosmos_reason1', f'text.model_path={path}',
                 f'text.max_tokens={TOKENS}', f'text.embed_dim={LAYERS * WIDTH}']
    return preset('cosmos-predict2.5-2b',
                  overrides + [f'text.{k}={v}' for k, v in extra.items()]).text


def pipeline_reference(path, prompt):
    """Return diffusers' Cosmos 2.5 prompt embeddings for ``prompt`` [TOKENS, LAYERS*WIDTH]."""
    from diffusers import Cosmos2_5_PredictBasePipeline
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    pipe = types.SimpleNamespace(
        tokenizer=AutoTokenizer.from_pretrained(path),
        text_encoder=AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval(),
        _execution_device=torch.device('cpu'))
    with torch.no_grad():
        return Cosmos2_5_PredictBasePipeline._get_prompt_embeds(
            pipe, prompt, max_sequence_length=TOKENS, device=torch.device('cpu'),
            dtype=torch.float32)[0]


@pytest.mark.parametrize('padding_side', ['right', 'left'])
def test_embeddings_equal_the_cosmos_pipeline_with_input_ids_only(tmp_path, padding_side):
    path = make_tiny_qwen(tmp_path / 'qwen', padding_side)
    encoder = CosmosReasonEncoder(text_config(path), dtype=torch.float32)
    prompt = 'pick up the red cube'
    ours = encoder.encode(prompt)
    reference = pipeline_reference(path, prompt)
    assert ours.shape == (TOKENS, LAYERS * WIDTH) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)

    ids = encoder.input_ids(prompt)[0]
    pads = int((ids == encoder.tokenizer.pad_token_id).sum())
    assert pads > TOKENS // 3                               # most rows are padding
    assert (ids[-1] if padding_side == 'right' else ids[0]) == encoder.tokenizer.pad_token_id
    # The discriminating case: with the tokenizer's attention mask (the previous recipe) some
    # rows differ, and with left padding every row of the instruction does.
    with torch.no_grad():
        masked = encoder._model(input_ids=ids[None], attention_mask=(ids != 0).long()[None],
                                output_hidden_states=True).hidden_states[1:]
    masked = standardise_and_concat(masked)[0]
    differs = (masked - reference).abs().amax(-1) > 1e-3
    assert differs.any()
    if padding_side == 'left':
        assert differs[ids != encoder.tokenizer.pad_token_id].all()


def test_the_recipe_is_the_cache_identity(tmp_path):
    right = make_tiny_qwen(tmp_path / 'right', 'right')
    left = make_tiny_qwen(tmp_path / 'left', 'left')
    other_template = make_tiny_qwen(tmp_path / 'tmpl', 'right',
                                    TEMPLATE.replace(' <|im_end|>', '<|im_end|>'))
    other_weights = make_tiny_qwen(tmp_path / 'w', 'right', seed=1)
    base = CosmosReasonEncoder(text_config(right), dtype=torch.float32)
    variants = {
        'padding side': CosmosReasonEncoder(text_config(left), dtype=torch.float32),
        'template': CosmosReasonEncoder(text_config(other_template), dtype=torch.float32),
        'weights': CosmosReasonEncoder(text_config(other_weights), dtype=torch.float32),
        'length': CosmosReasonEncoder(text_config(right, max_tokens=TOKENS + 8),
                                      dtype=torch.float32),
        'dtype': CosmosReasonEncoder(text_config(right), dtype=torch.bfloat16),
    }
    keys = {name: InstructionCache(enc, tmp_path / 'cache')._path('wave')
            for name, enc in variants.items()}
    own = InstructionCache(base, tmp_path / 'cache')._path('wave')
    for name, key in keys.items():
        assert key != own, f'changing the {name} kept the cache key'
    assert 'mask=input_ids-only' in base.identity and 'layers=all' in base.identity

    # A cache file written under the previous recipe (its identity) is not read: recomputed.
    stale = InstructionCache(variants['padding side'], tmp_path / 'cache')
    stale._write('wave', torch.zeros(TOKENS, LAYERS * WIDTH))
    fresh = InstructionCache(base, tmp_path / 'cache')
    assert fresh.get('wave').abs().sum() > 0 and fresh.misses == 1


def test_offline_cache_names_the_command_instead_of_loading_the_encoder(tmp_path):
    path = make_tiny_qwen(tmp_path / 'qwen')
    cfg = text_config(path)
    InstructionCache(make_text_encoder(cfg), tmp_path / 'cache').get('open the drawer')
    encoder = make_text_encoder(cfg)
    offline = InstructionCache(encoder, tmp_path / 'cache', offline=True)
    assert offline.get('open the drawer').shape == (TOKENS, LAYERS * WIDTH)
    with pytest.raises(MissingEmbedding, match='dit4dit_train.embed_instructions'):
        offline.get('close the drawer')
    assert encoder._model is None                           # never loaded


def test_a_directory_without_a_model_is_refused_at_once(tmp_path):
    with pytest.raises(ValueError, match='no config.json'):
        make_text_encoder(text_config(tmp_path))
