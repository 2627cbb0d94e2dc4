"""The emulator's speed-ups: moto's SQS and its request dispatch do per call what cannot
change while the server runs. Each answers as moto does (tests/test_emulator_sqs.py runs one
scenario against moto as it is and patched, and compares the transcripts)."""

from __future__ import annotations


def faster_sqs() -> None:
    """moto's SQS does per call what AWS does not: every SendMessage and every received message
    computes all of the queue's attributes (three passes over every message, each asking the
    clock through datetime arithmetic), GetQueueAttributes computes them again per name asked,
    and a receipt handle is found by scanning the queue. With a thousand tasks waiting an
    agent's receive, visibility change and delete cost the emulator ~200 ms of its one core
    (`python bench/emulator_sqs.py`), and a long load test slows to a crawl. Same answers, less
    work: the clock is time.time(); the counts are one pass; the retention check reads the one
    attribute it needs; GetQueueAttributes builds the attributes once; receipt handles are
    indexed as moto hands them out (a weak map, so a deleted message leaves it), and a handle
    the index lacks (one from before a restore) falls back to moto's scan."""
    from moto.sqs import models

    if getattr(models.Queue, "_sdctl_fast", False):
        return
    _clock_and_counts(models)
    _indexed_receipt_handles(models)
    models.Queue._sdctl_fast = True


def _clock_and_counts(models) -> None:
    """time.time() for moto's clock; the queue's counts in one pass; attributes built once."""
    import time

    original_unix_time = models.unix_time

    def unix_time(dt=None):
        return time.time() if dt is None else original_unix_time(dt)

    def unix_time_millis(dt=None):
        return time.time() * 1000.0 if dt is None else original_unix_time(dt) * 1000.0

    models.unix_time, models.unix_time_millis = unix_time, unix_time_millis

    def counts(self):
        now = time.time() * 1000.0
        visible = delayed = hidden = 0
        for m in self._messages:
            if now < m.delayed_until:
                delayed += 1
            if now > m.visible_at:
                visible += not now < m.delayed_until
            else:
                hidden += 1
        return visible, hidden, delayed

    def get_queue_attributes(self, queue_name, attribute_names):
        queue = self.get_queue(queue_name)
        if not attribute_names:
            return {}
        valid = ["All"] + queue.BASE_ATTRIBUTES + queue.FIFO_ATTRIBUTES + queue.KMS_ATTRIBUTES
        invalid = next((n for n in attribute_names if n not in valid), None)
        if invalid or invalid == "":
            raise models.InvalidAttributeName(invalid)
        attributes = queue.attributes
        if "All" in attribute_names:
            return attributes
        return {n: attributes[n] for n in attribute_names if attributes.get(n) is not None}

    def retained(self, queue_name, message):
        period = int(self.get_queue(queue_name).message_retention_period)
        return period + message.sent_timestamp / 1000 > time.time()

    models.Queue.approximate_number_of_messages = property(lambda self: counts(self)[0])
    models.Queue.approximate_number_of_messages_not_visible = property(lambda self: counts(self)[1])
    models.Queue.approximate_number_of_messages_delayed = property(lambda self: counts(self)[2])
    models.SQSBackend.get_queue_attributes = get_queue_attributes
    models.SQSBackend.is_message_valid_based_on_retention_period = retained


def _indexed_receipt_handles(models) -> None:
    """Receipt handles found through a weak index, not a scan (moto's scan where it lacks one)."""
    import time
    import weakref

    def unix_time_millis():
        return time.time() * 1000.0

    handles: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
    original_mark_received = models.Message.mark_received

    def mark_received(self, visibility_timeout=None):
        original_mark_received(self, visibility_timeout)
        handles[self.receipt_handle] = self

    def messages(self):
        now = unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def find(queue, receipt_handle):
        m = handles.get(receipt_handle)
        return m if m is not None and m in queue._messages else None  # `in`: an identity scan in C

    original_delete = models.Queue.delete_message

    def delete_message(self, receipt_handle):
        if receipt_handle in self.deleted_messages:
            return
        m = find(self, receipt_handle)
        if m is None:
            return original_delete(self, receipt_handle)
        try:  # in place, one C call: a message another thread appends meanwhile is kept
            self._messages.remove(m)
        except ValueError:  # deleted by another call meanwhile
            pass
        self.pending_messages.discard(m)
        self.deleted_messages.update(m.all_receipt_handles)

    original_visibility = models.SQSBackend.change_message_visibility

    def change_message_visibility(self, queue_name, receipt_handle, visibility_timeout):
        queue = self.get_queue(queue_name)
        m = find(queue, receipt_handle)
        if m is None:
            return original_visibility(self, queue_name, receipt_handle, visibility_timeout)
        # what moto's loop does once it has found the message
        if unix_time_millis() + int(visibility_timeout) * 1000 - m.sent_timestamp > 43200 * 1000:
            raise models.InvalidParameterValue(
                f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
                "VisibilityTimeout for the message is beyond the limit [43200 seconds]")
        m.change_visibility(visibility_timeout)
        if m.visible and m in queue.pending_messages:
            queue.pending_messages.remove(m)

    models.Message.mark_received = mark_received
    models.Queue.messages = property(messages)
    models.Queue.delete_message = delete_message
    models.SQSBackend.change_message_visibility = change_message_visibility


def faster_dispatch() -> None:
    """moto's server redoes per request what cannot change while it serves: it finds the backend
    for a host by listing its own package folder (~170 directory entries, a stat each) and then
    trying every service's URL patterns in turn, under one lock that every request waits on; it
    lists a response class's methods with inspect.getmembers to look the action up; and SQS
    builds a queue's attributes on every SendMessage (to read one of them), turning each name
    from CamelCase with a character loop. All three are pure functions of their argument here,
    so they are remembered: a request costs the emulator about 1.5 ms less CPU
    (`python bench/emulator_calls.py`). Nothing else changes: the first answer for a host, a
    class or a name is moto's own (tests/test_emulator_sqs.py checks the dispatch matches)."""
    import functools

    from moto.core import responses, utils
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.sqs import models

    if getattr(DomainDispatcherApplication, "_sdctl_fast", False):
        return
    original_backend_for_host = DomainDispatcherApplication.get_backend_for_host
    backends: dict[str | None, object] = {}

    def get_backend_for_host(self, host):
        try:
            return backends[host]
        except KeyError:
            found = original_backend_for_host(self, host)
            if len(backends) < 4096:  # hosts are service.region names: a handful in practice
                backends[host] = found
            return found

    method_names: dict[type, list[str]] = {}

    def method_names_from_class(clazz) -> list[str]:
        names = method_names.get(clazz)
        if names is None:
            names = method_names[clazz] = utils.method_names_from_class(clazz)
        return names

    underscores = functools.lru_cache(maxsize=4096)(utils.camelcase_to_underscores)
    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host
    responses.method_names_from_class = method_names_from_class
    responses.camelcase_to_underscores = underscores
    models.camelcase_to_underscores = underscores
    DomainDispatcherApplication._sdctl_fast = True
