"""llmlab hands its price to LiteLLM (custom pricing) when LiteLLM's cost map does not give it, so LiteLLM's own
record of a call (what its callbacks see) costs what llmlab's row says (llmlab._litellm.custom_pricing)."""

from __future__ import annotations

import time

import pytest

import llmlab
from llmlab._litellm import custom_pricing, litellm


def test_custom_pricing_only_where_litellms_map_does_not_give_llmlabs_price():
    ll = litellm()
    inp, out = ll.cost_per_token(model="openai/gpt-4o-mini", prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert custom_pricing("openai/gpt-4o-mini", inp / 1e6, out / 1e6) == {}  # LiteLLM's own price: left alone
    assert custom_pricing("openai/gpt-4o-mini", 2 * inp / 1e6, out / 1e6) == {
        "input_cost_per_token": 2 * inp / 1e6, "output_cost_per_token": out / 1e6}  # set_price
    assert custom_pricing("openai/not-in-any-map", 1e-6, 2e-6) == {
        "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}  # unmapped (the sandbox's models)
    assert custom_pricing("openai/not-in-any-map", None, None) == {}  # no price: LiteLLM decides


@pytest.mark.parametrize("stream", [True, False])
def test_litellms_callbacks_see_the_cost_llmlab_records_for_a_sandbox_call(sandbox, stream):
    from litellm.integrations.custom_logger import CustomLogger

    seen: list[float | None] = []

    class Costs(CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):  # noqa: ANN001
            seen.append(kwargs.get("response_cost"))

    manager = litellm().logging_callback_manager
    logger = Costs()
    manager.add_litellm_callback(logger)
    try:
        res = llmlab.run(["Say hello."], ["sandbox/fast"], progress=False, cache=False, stream=stream)
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:  # LiteLLM logs from a task after the answer
            time.sleep(0.05)
    finally:
        manager.remove_callback_from_all_lists(logger)
    row = res.results.iloc[0]
    assert row["status"] == "ok" and row["cost_usd"] > 0
    assert seen and seen[-1] == pytest.approx(row["cost_usd"], rel=1e-9)
