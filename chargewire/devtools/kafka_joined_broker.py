"""A second Kafka broker that joins a `KafkaBroker`'s cluster, so that tests can fail one partition alone.

The node is a broker only (its controller is the `KafkaBroker`'s), with a PLAINTEXT listener for clients and
the cluster's BROKER listener for replication. A topic made with `create_topic_on` has one partition led by
this node, the others by node 1. Alone on this node, that partition fails while the cluster goes on serving the
others: killed, the node's partition goes leaderless once the controller fences it (its session runs out,
`broker.session.timeout.ms`, 9 s by default); frozen for less than that, its leader stops answering. With a
follower on node 1, a restart moves the partition's lead there and, with `lead_again`, back.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from confluent_kafka import ElectionType, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # what confluent_kafka.admin re-exports, without declaring it

from chargewire.devtools.kafka_broker import (
    FORMAT_HEAP,
    HEAP,
    SMALL_NODE_SETTINGS,
    KafkaBroker,
    KafkaBrokerError,
    escape,
    format_storage,
    java_command,
    pick_ports,
    start_node,
    stop_node,
)
from chargewire.devtools.kafka_jars import ensure_kafka_jars

NODE_ID = 2
# Given a topic's partition leaders, by partition (-1: none), whether they are as awaited.
LeaderCheck = Callable[[list[int]], bool]
_running: set[JoinedBroker] = set()


class JoinedBroker:
    """Node 2 of `cluster`'s Kafka cluster, in its own temporary folder; `start()`/`stop()` repeatable.

    `joined_broker` runs one for a block and removes its folder after it.
    """

    def __init__(self, cluster: KafkaBroker, start_timeout_s: float = 120.0, stop_timeout_s: float = 30.0) -> None:
        self.cluster = cluster
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.base_dir = Path(tempfile.mkdtemp(prefix="chargewire-kafka-node2-"))
        self.config_path = self.base_dir / "server.properties"
        self.log_path = self.base_dir / "broker.log"
        self.ports = dict(zip(("BROKER", "PLAINTEXT"), pick_ports(2), strict=True))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The node's process id while it runs."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def start(self) -> None:
        """Start the node (formatting its storage the first time) and wait until the cluster lists it."""
        java = shutil.which("java")
        if java is None:
            raise KafkaBrokerError("`java` (17 or newer) is not installed")
        jars = self.cluster.jars_dir or ensure_kafka_jars()
        self.config_path.write_text(self._server_properties())
        if not (self.base_dir / "data" / "meta.properties").exists():
            format_storage(java_command(java, jars, "warn", FORMAT_HEAP), self._cluster_id(), self.config_path, [])
        self._process = start_node(java_command(java, jars, "info", HEAP), self.config_path, self.log_path)
        _running.add(self)
        try:
            self._wait_until_listed()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the node (SIGTERM: a controlled shutdown, so the controller fences it at once; SIGKILL if stuck)."""
        process, self._process = self._process, None
        _running.discard(self)
        if process is not None:
            stop_node(process, self.stop_timeout_s)

    def create_topic_on(
        self, name: str, partitions: int, on_this_node: int, *, follower: bool = False, timeout_s: float = 30.0
    ) -> None:
        """Create a topic whose partition `on_this_node` this node leads, every other led by node 1.

        Every partition has one replica, or with `follower` two (Kafka wants as many for each): node 1 then
        follows this node's partition, so its lead can move there and back, and this node follows the others.
        """
        mine, others = ([NODE_ID, 1], [1, NODE_ID]) if follower else ([NODE_ID], [1])
        assignment = [mine if partition == on_this_node else others for partition in range(partitions)]
        admin = self.cluster.admin()
        topic = NewTopic(name, num_partitions=partitions, replica_assignment=assignment)
        admin.create_topics([topic])[name].result(timeout=timeout_s)
        if not wait_for_leaders(admin, name, lambda leaders: leaders == [row[0] for row in assignment], timeout_s):
            raise KafkaBrokerError(f"topic {name} has no leader for every partition after {timeout_s}s")

    def lead_again(self, topic: str, partition: int, timeout_s: float = 60.0) -> None:
        """Give this node back the lead of a partition it is the preferred leader of, once it has caught up."""
        admin = self.cluster.admin()
        deadline = time.monotonic() + timeout_s
        wanted = TopicPartition(topic, partition)
        while (leaders := _leaders(admin, topic)) is None or leaders[partition] != NODE_ID:
            if time.monotonic() > deadline:
                raise KafkaBrokerError(f"node {NODE_ID} did not take back the lead of {topic}/{partition}")
            # Refused until this node's replica is in sync again; asked again after a pause.
            with contextlib.suppress(KafkaException):
                admin.elect_leaders(ElectionType.PREFERRED, [wanted]).result(timeout=timeout_s)
            time.sleep(0.5)

    def _wait_until_listed(self) -> None:
        admin = self.cluster.admin()
        deadline = time.monotonic() + self.start_timeout_s
        while NODE_ID not in _brokers(admin):
            if self._process is None or self._process.poll() is not None:
                raise KafkaBrokerError(f"Kafka node {NODE_ID} exited:\n{self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise KafkaBrokerError(f"Kafka node {NODE_ID} not in the cluster after {self.start_timeout_s}s")
            time.sleep(0.2)

    def _cluster_id(self) -> str:
        meta = (self.cluster.data_dir / "meta.properties").read_text()
        return next(line.split("=", 1)[1] for line in meta.splitlines() if line.startswith("cluster.id="))

    def _server_properties(self) -> str:
        listeners = ",".join(f"{name}://127.0.0.1:{port}" for name, port in self.ports.items())
        properties = {
            "process.roles": "broker",
            "node.id": str(NODE_ID),
            "controller.quorum.voters": f"1@127.0.0.1:{self.cluster.ports['CONTROLLER']}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "BROKER",
            "listeners": listeners,
            "advertised.listeners": listeners,
            "listener.security.protocol.map": "BROKER:PLAINTEXT,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.base_dir / "data"),
            **SMALL_NODE_SETTINGS,
        }
        return "".join(f"{key}={escape(value)}\n" for key, value in properties.items())


@contextlib.contextmanager
def joined_broker(cluster: KafkaBroker) -> Iterator[JoinedBroker]:
    """Node 2 of `cluster`'s cluster, running for the block; its folder is removed after it."""
    node = JoinedBroker(cluster)
    try:
        node.start()
        yield node
    finally:
        node.stop()
        shutil.rmtree(node.base_dir, ignore_errors=True)


def wait_for_leaders(admin: AdminClient, topic: str, wanted: LeaderCheck, timeout_s: float = 30.0) -> bool:
    """Whether the topic's partition leaders (by partition, -1 for none) satisfy `wanted` within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        leaders = _leaders(admin, topic)
        if leaders is not None and wanted(leaders):
            return True
        time.sleep(0.1)
    return False


def _leaders(admin: AdminClient, topic: str) -> list[int] | None:
    try:
        found = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
    except KafkaException:
        return None
    if found is None or found.error:
        return None
    return [found.partitions[number].leader for number in sorted(found.partitions)]


def _brokers(admin: AdminClient) -> set[int]:
    try:
        return set(admin.list_topics(timeout=5).brokers)
    except KafkaException:
        return set()


@atexit.register
def _stop_leftover_nodes() -> None:
    # A test run that dies without closing its node must not leave a JVM behind.
    for node in list(_running):
        node.stop()
