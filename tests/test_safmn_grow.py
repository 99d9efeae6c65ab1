"""Deepening a trained SAFMN (``grow_blocks``, used by ``model.grow``; the training side is in
test_train.py): the grown network computes exactly the source's function, its new blocks can
learn, and what cannot start as an identity is refused."""

from __future__ import annotations

import pytest
import torch

from lightsr.models.archs.safmn import SAFMN, grow_blocks


def trained_safmn(n_blocks: int, scale: int, seed: int = 0, **kw) -> SAFMN:
    torch.manual_seed(seed)
    model = SAFMN(dim=8, n_blocks=n_blocks, upscaling_factor=scale, **kw)
    with torch.no_grad():  # no zero layer anywhere: a source whose blocks all do something
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


@pytest.mark.parametrize(("n_old", "n_new", "scale"), [(2, 4, 1), (2, 6, 2), (3, 3, 4), (1, 5, 3)])
def test_grown_model_computes_the_source_function(n_old: int, n_new: int, scale: int) -> None:
    source = trained_safmn(n_old, scale)
    torch.manual_seed(1)
    model = SAFMN(dim=8, n_blocks=n_new, upscaling_factor=scale).eval()
    model.load_state_dict(grow_blocks(model, source.state_dict()))
    x = torch.rand(2, 3, 13, 21)  # odd sizes: the pooled SAFM levels are uneven
    with torch.no_grad():
        assert torch.equal(model(x), source(x))
    step = n_new // n_old
    for i in range(n_old):  # the source's block i is block step * i
        for k, v in source.feats[i].state_dict().items():
            assert torch.equal(model.feats[step * i].state_dict()[k], v)


def test_new_blocks_start_silent_but_learn() -> None:
    source = trained_safmn(2, 1)
    model = SAFMN(dim=8, n_blocks=4, upscaling_factor=1)
    model.load_state_dict(grow_blocks(model, source.state_dict()))
    new = model.feats[1]
    assert not new.safm.aggr.weight.any() and not new.ccm.ccm[2].weight.any()
    assert new.safm.mfr[0].weight.abs().sum() > 0  # the inner layers keep a random init
    x = torch.rand(2, 3, 16, 16)
    (model(x) - x.flip(-1)).abs().mean().backward()
    assert new.safm.aggr.weight.grad.abs().sum() > 0
    assert new.ccm.ccm[2].weight.grad.abs().sum() > 0


def test_grow_refuses_what_it_cannot_make_an_identity() -> None:
    src8 = trained_safmn(2, 1).state_dict()
    with pytest.raises(ValueError, match="multiple of the source"):
        grow_blocks(SAFMN(dim=8, n_blocks=3, upscaling_factor=1), src8)
    with pytest.raises(ValueError, match=r"no tensor to_feat.weight of shape \(12, 3, 3, 3\)"):
        grow_blocks(SAFMN(dim=12, n_blocks=4, upscaling_factor=1), src8)
    sig = SAFMN(dim=8, n_blocks=4, upscaling_factor=1, safm_act="sigmoid")
    with pytest.raises(ValueError, match="0 at 0"):
        grow_blocks(sig, trained_safmn(2, 1, safm_act="sigmoid").state_dict())
