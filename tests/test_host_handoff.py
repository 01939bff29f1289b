"""The control policy (rootstream/host/handoff.py): who holds control in each mode."""

import pytest

from rootstream.host.handoff import ASK_TIMEOUT_S, ControlPolicy
from rootstream.protocol.handoff import NOBODY, HandoffMode, RequestOutcome, StateFlag


def room(mode="ask", **options):
    policy = ControlPolicy(mode, **options)
    first = policy.join(1, "den", guest=False, now=0.0)
    policy.join(2, "tv", guest=False, now=1.0)
    policy.join(3, "guest", guest=True, now=2.0)
    return policy, first


def test_the_first_paired_viewer_holds_control_and_guests_watch():
    policy = ControlPolicy()
    assert policy.join(7, "guest", guest=True, now=0.0) is None
    assert policy.holder == NOBODY
    change = policy.join(8, "den", guest=False, now=1.0)
    assert (change.previous, change.holder, change.reason) == (NOBODY, 8, "joined")
    assert policy.may_control(8) and not policy.may_control(7) and not policy.may_control(NOBODY)
    assert policy.join(9, "tv", guest=False, now=2.0) is None
    assert policy.holder == 8


def test_ask_waits_for_the_holders_answer():
    policy, _ = room("ask")
    assert policy.request(2, now=5.0) is None
    assert policy.pending == 2 and policy.holder == 1
    holder_view = policy.state_for(1)
    assert (holder_view.pending, holder_view.pending_name) == (2, "tv")
    assert policy.state_for(2).outcome == RequestOutcome.WAITING
    # Only the holder answers, and only for the asker pending.
    assert policy.answer(2, 2, True) is None
    assert policy.answer(1, 3, True) is None
    change = policy.answer(1, 2, True)
    assert (change.previous, change.holder, change.reason) == (1, 2, "granted")
    assert policy.may_control(2) and not policy.may_control(1)
    assert policy.state_for(2).outcome == RequestOutcome.GRANTED
    assert policy.pending == NOBODY


def test_ask_denied_and_late_answers_change_nothing():
    policy, _ = room("ask")
    policy.request(2, now=5.0)
    assert policy.answer(1, 2, False) is None
    assert policy.holder == 1 and policy.state_for(2).outcome == RequestOutcome.DENIED
    # A second answer for the settled request (a resend) grants nothing.
    assert policy.answer(1, 2, True) is None and policy.holder == 1


def test_ask_one_request_at_a_time_and_unanswered_requests_expire():
    policy, _ = room("ask", guests_control=True)
    policy.join(4, "lap", guest=False, now=3.0)
    policy.request(2, now=5.0)
    policy.request(4, now=6.0)
    assert policy.pending == 2 and policy.state_for(4).outcome == RequestOutcome.BUSY
    assert not policy.expire(5.0 + ASK_TIMEOUT_S - 0.1)
    assert policy.expire(5.0 + ASK_TIMEOUT_S)
    assert policy.pending == NOBODY and policy.state_for(2).outcome == RequestOutcome.DENIED
    assert policy.holder == 1


def test_free_hands_over_at_once():
    policy, _ = room("free")
    change = policy.request(2, now=5.0)
    assert (change.previous, change.holder, change.reason) == (1, 2, "free")
    change = policy.request(1, now=6.0)
    assert (change.previous, change.holder) == (2, 1)


def test_locked_never_hands_over_but_an_empty_seat_is_taken():
    policy, _ = room("locked")
    assert policy.request(2, now=5.0) is None
    assert policy.holder == 1 and policy.state_for(2).outcome == RequestOutcome.LOCKED
    change = policy.leave(1)
    assert (change.previous, change.holder, change.reason) == (1, 2, "left")


def test_guests_take_control_only_with_free_and_guests_control():
    for mode, guests_control in [("ask", True), ("free", False), ("locked", True)]:
        policy, _ = room(mode, guests_control=guests_control)
        assert policy.request(3, now=5.0) is None
        assert policy.holder == 1
        assert policy.state_for(3).outcome == RequestOutcome.NOT_ALLOWED
        assert not policy.state_for(3).flags & StateFlag.MAY_ASK
    policy, _ = room("free", guests_control=True)
    assert policy.state_for(3).flags == StateFlag.GUEST | StateFlag.MAY_ASK
    change = policy.request(3, now=5.0)
    assert change.holder == 3
    # A guest holder who leaves passes control to a paired viewer, never another guest.
    policy.join(5, "guest2", guest=True, now=6.0)
    assert policy.leave(3).holder == 1


def test_the_holder_leaving_passes_control_to_the_longest_connected_paired_viewer():
    policy, _ = room("ask")
    policy.join(4, "lap", guest=False, now=3.0)
    policy.request(4, now=5.0)
    change = policy.leave(1)
    assert (change.holder, change.reason) == (2, "left")
    # The request was put to the holder who left: it is denied, not inherited.
    assert policy.pending == NOBODY and policy.state_for(4).outcome == RequestOutcome.DENIED
    policy.leave(3)
    assert policy.leave(2).holder == 4
    assert policy.leave(4).holder == NOBODY
    assert policy.leave(4) is None


def test_giving_control_back_and_taking_an_empty_seat():
    policy = ControlPolicy("locked")
    policy.join(1, "den", guest=False, now=0.0)
    change = policy.give_back(1)
    assert (change.previous, change.holder, change.reason) == (1, NOBODY, "gave back")
    assert policy.give_back(1) is None
    assert policy.request(1, now=1.0).holder == 1


def test_a_pending_asker_who_leaves_is_forgotten():
    policy, _ = room("ask")
    policy.request(2, now=5.0)
    policy.leave(2)
    assert policy.pending == NOBODY and policy.state_for(1).pending_name == ""


def test_state_counts_watchers_and_changes():
    policy, _ = room("ask")
    state = policy.state_for(2)
    assert (state.you, state.holder, state.holder_name, state.watching) == (2, 1, "den", 2)
    assert state.mode == HandoffMode.ASK and not state.you_hold
    assert policy.state_for(1).you_hold
    before = policy.change
    policy.request(2, now=5.0)
    assert policy.change > before
    asked = policy.change
    policy.request(2, now=5.5)  # asking again (a resent request) is no change
    assert policy.change == asked


def test_change_describes_itself():
    policy, first = room()
    assert first.describe(policy.names()) == "control: nobody -> den (joined)"


def test_numbers_are_unique_and_unknown_viewers_are_ignored():
    policy, _ = room()
    with pytest.raises(ValueError):
        policy.join(1, "again", guest=False, now=9.0)
    with pytest.raises(ValueError):
        policy.join(NOBODY, "nobody", guest=False, now=9.0)
    assert policy.request(42, now=9.0) is None and policy.give_back(42) is None
    assert policy.state_for(42).outcome == RequestOutcome.NONE
