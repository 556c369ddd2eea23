"""`batches.read_ahead`: a stream made in a thread of its own, ahead of its reader."""

from __future__ import annotations

import threading

import pytest

from newsletter.batches import chunks, read_ahead


def test_chunks_cut_a_stream_into_lists_of_the_size_the_last_shorter():
    assert list(chunks(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunks([], 3)) == []


def test_read_ahead_gives_every_item_in_order_made_by_another_thread():
    makers: set[str] = set()

    def items():
        for number in range(50):
            makers.add(threading.current_thread().name)
            yield number

    assert list(read_ahead(items(), 2)) == list(range(50))
    assert makers == {"read-ahead"}


def test_read_ahead_makes_at_most_depth_items_besides_the_one_being_read():
    made: list[int] = []
    counted = threading.Condition()

    def items():
        for number in range(100):
            with counted:
                made.append(number)
                counted.notify_all()
            yield number

    stream = read_ahead(items(), 3)
    assert next(stream) == 0
    with counted:  # the maker runs ahead until the queue is full, and then waits
        counted.wait_for(lambda: len(made) >= 5, timeout=5)
    threading.Event().wait(0.3)
    assert len(made) == 5  # the one read, three in the queue, one waiting to be put
    stream.close()


def test_an_error_making_an_item_is_raised_where_that_item_would_have_been():
    def items():
        yield 1
        yield 2
        raise ValueError("row 3 is broken")

    got = []
    with pytest.raises(ValueError, match="row 3 is broken"):
        for item in read_ahead(items(), 2):
            got.append(item)
    assert got == [1, 2]


def test_a_reader_that_stops_early_stops_the_maker_and_leaves_no_thread():
    def items():
        number = 0
        while True:  # endless: only the reader's stop ends it
            yield number
            number += 1

    before = threading.active_count()
    for item in read_ahead(items(), 2):
        if item == 10:
            break
    assert not any(thread.name == "read-ahead" for thread in threading.enumerate())
    assert threading.active_count() == before


def test_a_reader_that_raises_stops_the_maker_too():
    def items():
        yield from range(1_000_000)

    with pytest.raises(RuntimeError):
        for item in read_ahead(items(), 2):
            if item == 5:
                raise RuntimeError("the database went away")
    assert not any(thread.name == "read-ahead" for thread in threading.enumerate())
