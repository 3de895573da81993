"""What code written around sentence-transformers' CrossEncoder (a torch module) calls on it:
training entry points, the torch-module surface, max_length beyond the position table."""

from __future__ import annotations

import logging
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from crossrank import CrossEncoder

PAIRS = [
    ("How many people live in Berlin?", "Berlin had about 3.6 million people in 2019."),
    ("How many people live in Berlin?", "The museum has ancient coins."),
    ("What is the capital of France?", "Paris is the capital of France."),
]
LONG = ("word " * 400, "other " * 400)


@pytest.fixture
def model(bert_dir: Path) -> CrossEncoder:
    return CrossEncoder(str(bert_dir))


# -- 2. training: sentence-transformers' job ---------------------------------------------------


@pytest.mark.parametrize("method", ["fit", "old_fit", "smart_batching_collate",
                                    "smart_batching_collate_text_only"])
def test_training_methods_say_how_to_train(model: CrossEncoder, method: str) -> None:
    with pytest.raises(NotImplementedError) as info:
        getattr(model, method)(train_dataloader=None, epochs=1)
    message = str(info.value)
    assert f"CrossEncoder.{method}()" in message
    assert "inference-only" in message
    assert "CrossEncoderTrainer" in message
    assert "crossrank.CrossEncoder(path)" in message and "unchanged" in message


def test_fit_positional_call_form(model: CrossEncoder) -> None:
    with pytest.raises(NotImplementedError, match="inference-only"):
        model.fit([], 1, 10)


# -- 3. the torch-module surface ---------------------------------------------------------------


def test_to_eval_cpu_return_the_model(model: CrossEncoder) -> None:
    scores = model.predict(PAIRS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model.to("cpu") is model
        assert model.to(device="cpu") is model
        assert model.to("cpu:0") is model
        assert model.eval() is model
        assert model.cpu() is model
        assert model.train(False) is model
    assert model.training is False
    np.testing.assert_array_equal(model.predict(PAIRS), scores)


def test_gpu_device_warns_as_device_argument_does(model: CrossEncoder) -> None:
    with pytest.warns(UserWarning, match="runs on the CPU; device='cuda' is ignored") as rec:
        assert model.to("cuda") is model
    assert rec[0].filename == __file__
    with pytest.warns(UserWarning, match="device='cuda:1' is ignored") as rec:
        assert model.cuda(1) is model
    assert rec[0].filename == __file__
    with pytest.warns(UserWarning, match="device='mps' is ignored"):
        model.model.to("mps")
    assert model.device == "cpu"


def test_train_mode_warns_it_has_no_effect(model: CrossEncoder) -> None:
    scores = model.predict(PAIRS)
    with pytest.warns(UserWarning, match="inference-only: train\\(\\) has no effect") as rec:
        assert model.train() is model
    assert rec[0].filename == __file__
    with pytest.warns(UserWarning, match="no effect"):
        model.train(True)
    assert model.training is False
    np.testing.assert_array_equal(model.predict(PAIRS), scores)


def test_to_rejects_what_torch_rejects(model: CrossEncoder) -> None:
    with pytest.raises(TypeError, match="unexpected keyword"):
        model.to(devise="cpu")
    with pytest.raises(ValueError, match="not a dtype crossrank runs"):
        model.to("float64")


def test_half_bfloat16_float_change_the_precision(model: CrossEncoder,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    scores = model.predict(PAIRS)
    model.max_length = 20
    model.activation_fn = np.tanh
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no bfloat16 kernel here" on some CPUs
        assert model.bfloat16() is model
    assert model.precision == "bfloat16"
    assert model.max_length == 20 and model.activation_fn is np.tanh  # settings kept
    assert model.tokenizer(*LONG)["input_ids"].__len__() == 20
    bf16 = model.predict(PAIRS)
    np.testing.assert_allclose(bf16, np.tanh(model.predict(PAIRS, activation_fn=lambda x: x)),
                               rtol=1e-6)
    assert model.float() is model
    assert model.precision == "float32"
    model.max_length = model._native.max_positions
    model.activation_fn = None  # back to the saved one
    model.set_activation_fn(None)
    np.testing.assert_array_equal(model.predict(PAIRS), scores)
    with caplog.at_level(logging.WARNING), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert model.half() is model
    assert model.precision == "bfloat16"
    assert "half(): crossrank has no float16 kernels; running bfloat16" in caplog.text


def test_to_with_a_dtype(model: CrossEncoder) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert model.to("cpu", "bfloat16") is model
    assert model.precision == "bfloat16"
    model.to(dtype="float32")
    assert model.precision == "float32"


def test_precision_change_survives_pickling(model: CrossEncoder) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.bfloat16()
        again = pickle.loads(pickle.dumps(model))
    assert again.precision == "bfloat16"
    np.testing.assert_array_equal(again.predict(PAIRS), model.predict(PAIRS))


def test_int8_float_reloads_float32(bert_dir: Path) -> None:
    exact = CrossEncoder(str(bert_dir)).predict(PAIRS)
    int8 = CrossEncoder(str(bert_dir), precision="int8")
    assert int8.float().precision == "float32"
    np.testing.assert_array_equal(int8.predict(PAIRS), exact)


def test_dtype_without_torch(model: CrossEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    assert model.dtype == "float32"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.bfloat16()
    assert model.dtype == "bfloat16"
    assert model.model.dtype == "bfloat16"


def test_dtype_with_torch(model: CrossEncoder) -> None:
    torch = pytest.importorskip("torch", reason="the torch dtype needs torch")
    assert model.dtype is torch.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.to(torch.bfloat16)
    assert model.precision == "bfloat16" and model.dtype is torch.bfloat16
    model.to(torch.float32)
    assert model.precision == "float32"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.to(torch.zeros(1, dtype=torch.bfloat16))  # to(tensor): its dtype and device
    assert model.precision == "bfloat16"


def test_backend(model: CrossEncoder) -> None:
    assert model.backend == "torch" == model.get_backend()


def test_is_singular_input(model: CrossEncoder) -> None:
    assert model.is_singular_input(("q", "d")) is True
    assert model.is_singular_input(["q", "d"]) is True
    assert model.is_singular_input(np.array(["q", "d"])) is True
    assert model.is_singular_input([("q", "d")]) is False
    assert model.is_singular_input([["q", "d"], ["q", "e"]]) is False
    assert model.is_singular_input([]) is False
    assert model.is_singular_input(np.array([["q", "d"]])) is False
    assert model.is_singular_input(np.array([], dtype=str)) is False
    for inputs in (("q", "d"), [("q", "d")]):
        assert np.ndim(model.predict(inputs)) == (0 if model.is_singular_input(inputs) else 1)


def test_model_face(model: CrossEncoder, bert_dir: Path) -> None:
    face = model.model
    assert model.model is face
    assert face.config is model.config
    assert face.config.num_labels == 1 and face.config["model_type"] == "bert"
    assert face.device == "cpu"
    assert face.dtype == model.dtype
    assert face.training is False
    assert face.name_or_path == str(bert_dir)
    assert face.to("cpu") is face and face.eval() is face and face.cpu() is face
    assert face.train(False) is face
    with pytest.raises(TypeError, match="crossrank has no torch module"):
        face({"input_ids": [[1, 2]]})
    with pytest.raises(TypeError, match="no torch module"):
        face.forward(input_ids=None)
    with pytest.raises(TypeError, match="no torch module"):
        face.parameters()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert face.bfloat16() is face
    assert model.precision == "bfloat16"
    assert face.float() is face and model.precision == "float32"
    assert "ModelFace(bert" in repr(face)


# -- 4. max_length above the position table ---------------------------------------------------


@pytest.mark.parametrize("fixture", ["bert-st5-1label", "roberta-st5", "bert-st6-3label",
                                     "modernbert-st5", "deberta-v2-st5"])
def test_max_length_above_positions_is_clamped(fixture: str) -> None:
    from conftest import model_dir

    path = model_dir(fixture)
    assert path is not None
    plain = CrossEncoder(str(path))
    limit = plain._native.max_positions
    for asked in (limit + 1, 1024, 2048, 100_000):
        with pytest.warns(UserWarning, match=f"max_length={asked} is larger than the {limit} "
                          "positions") as rec:
            model = CrossEncoder(str(path), max_length=asked)
        assert rec[0].filename == __file__
        assert model.max_length == limit == model.max_seq_length
        assert len(model.tokenizer(*LONG)["input_ids"]) == limit
    plain.max_length = limit
    np.testing.assert_array_equal(model.predict([LONG, *PAIRS]), plain.predict([LONG, *PAIRS]))


def test_max_length_setters_clamp(model: CrossEncoder) -> None:
    limit = model._native.max_positions
    with pytest.warns(UserWarning, match="larger than the") as rec:
        model.max_length = 2048
    assert rec[0].filename == __file__
    assert model.max_length == limit
    model.max_length = 10
    with pytest.warns(UserWarning, match="larger than the"):
        model.max_seq_length = 1024
    assert model.max_seq_length == limit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.max_length = limit  # the limit itself: no warning


def test_clamped_max_length_pickles_without_a_warning(bert_dir: Path) -> None:
    with pytest.warns(UserWarning, match="larger than"):
        model = CrossEncoder(str(bert_dir), max_length=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = pickle.loads(pickle.dumps(model))
    assert again.max_length == model.max_length


def test_model_max_length_in_tokenizer_kwargs_is_clamped(bert_dir: Path) -> None:
    with pytest.warns(UserWarning, match="larger than"):
        model = CrossEncoder(str(bert_dir), tokenizer_kwargs={"model_max_length": 1024})
    assert model.max_length == model._native.max_positions


def test_reload_warnings_name_the_callers_line(model: CrossEncoder) -> None:
    # The reload's own warnings (a CPU without bfloat16 products says so) point at the user.
    for call in (model.bfloat16, model.model.bfloat16, lambda: model.to("bfloat16")):
        model.float()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        assert all(w.filename == __file__ for w in caught)


# -- typing ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_ecosystem_surface_type_checks(tmp_path: Path) -> None:
    """A user's script using the torch-module calls, the tokenizer, save and the async
    methods passes mypy --strict with crossrank's annotations."""
    mypy_api = pytest.importorskip("mypy.api")
    script = tmp_path / "user_code.py"
    script.write_text(
        "import asyncio\n"
        "from typing import Any\n"
        "from crossrank import CrossEncoder\n"
        "model: CrossEncoder = CrossEncoder('m').to('cpu').eval().half().float()\n"
        "model = model.train(False).cpu().bfloat16()\n"
        "dtype: Any = model.dtype\n"
        "backend: str = model.backend\n"
        "single: bool = model.is_singular_input(('q', 'd'))\n"
        "n: int = model.model.config.num_labels\n"
        "enc = model.tokenizer(['q'], ['d'], padding=True, truncation=True)\n"
        "ids: list[int] = model.tokenizer.encode('q', 'd')\n"
        "text: str = model.tokenizer.decode(ids, skip_special_tokens=True)\n"
        "pad: int | None = model.tokenizer.pad_token_id\n"
        "model.save('out')\n"
        "model.save_pretrained('out')\n"
        "async def serve() -> None:\n"
        "    scores: Any = await model.apredict([('q', 'd')])\n"
        "    hits = await model.arank('q', ['d'])\n"
        "    best: int | float | str = hits[0]['score']\n"
        "asyncio.run(serve())\n"
    )
    out, err, status = mypy_api.run([str(script), "--strict", "--no-incremental",
                                     "--ignore-missing-imports"])
    assert status == 0, out + err
    script.write_text("from crossrank import CrossEncoder\n"
                      "CrossEncoder('m').eval().to('cpu').no_such_method()\n")
    out, err, status = mypy_api.run([str(script), "--no-incremental"])
    assert status == 1 and "has no attribute \"no_such_method\"" in out, out + err
