"""The Kubernetes API server's rules (dagfactory_s3.k8s): exact where they compute, and the same on the
manifest and on the pod the operator renders from it."""

from __future__ import annotations

import copy
import re
from fractions import Fraction

import pytest

from dagfactory_s3 import k8s, manifest
from dagfactory_s3.schema import schema

from bad_inputs import NEAR_MISSES
from conftest import all_examples


class TestQuantities:
    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ("500m", Fraction(1, 2)),
            ("2", Fraction(2)),
            (".5", Fraction(1, 2)),
            ("1.", Fraction(1)),
            ("+1Ki", Fraction(1024)),
            ("1.5Gi", Fraction(3 * 2**29)),
            ("1e3", Fraction(1000)),
            ("1E-3", Fraction(1, 1000)),
            ("1E", Fraction(10**18)),
            ("250u", Fraction(1, 4000)),
            ("-0", Fraction(0)),
            ("-2M", Fraction(-2_000_000)),
        ],
    )
    def test_quantity_value_is_exact(self, text, value):
        """Quantities parse to exact values, so 1Gi > 1G and 1500m < 2 compare as Kubernetes compares them."""
        assert k8s.quantity(text) == value

    @pytest.mark.parametrize(
        "text", ["", ".", "1.2.3", "1e", "1gi", "1 Gi", "Gi", "1e1.5", "0x10", "1\n", "1" * 65]
    )
    def test_not_a_quantity(self, text):
        """What Kubernetes' ParseQuantity refuses is refused (a ValueError naming the quantity)."""
        with pytest.raises(ValueError, match="quantity"):
            k8s.quantity(text)

    @pytest.mark.parametrize(
        "text", ["500m", ".5", "1.", "+1Ki", "1e3", "1E", "-0", "1.2.3", ".", "1e", "1gi", "1 Gi"]
    )
    def test_schema_pattern_is_the_rule(self, text):
        """The schema's quantity pattern (for editors) accepts exactly what the rule's grammar accepts."""
        pattern = schema()["$defs"]["quantity"]["pattern"]
        assert bool(re.search(pattern, text)) == bool(k8s.QUANTITY_RE.fullmatch(text))


class TestImages:
    @pytest.mark.parametrize(
        "image",
        [
            "python:3.11",
            "ubuntu",
            "library/ubuntu:22.04",
            "ghcr.io/org/a_b__c-d.e/f:v1.0_rc-1",
            "localhost:5000/x:1",
            "[fd00::1]:5000/x:1",
            "Registry.Example.com/x:1",
            "r.example.com/x@sha256:" + "0" * 64,
            "r.example.com/x:1@sha512:" + "f" * 128,
        ],
    )
    def test_valid_references(self, image):
        """References of the distribution grammar pass (pinning is a separate rule)."""
        assert k8s.check_image(image) is None

    @pytest.mark.parametrize(
        ("image", "reason"),
        [
            ("UBUNTU", "must be lowercase"),
            ("r.example.com/Team/x:1", "must be lowercase"),
            ("x::1", "contains '::'"),
            ("x:", "empty tag"),
            ("x:" + "a" * 129, "at most 128"),
            ("x@sha256:" + "0" * 63, "sha256:<64 hex digits>"),
            ("x a:1", "whitespace"),
            (" x:1", "leading or trailing whitespace"),
            ("x:1\u200e", "U+200E"),
            ("r.example.com/" + "a" * 250 + ":1", "longer than 255"),
            ("-x:1", "not a valid image reference"),
            ("x/:1", "not a valid image reference"),
        ],
    )
    def test_invalid_references(self, image, reason):
        """What the kubelet cannot pull is refused with the reason."""
        assert reason in (k8s.check_image(image) or "")


class TestRenderedPods:
    """The rules hold on what the operator renders: the factory adds nothing the API server refuses."""

    @pytest.fixture(autouse=True)
    def _airflow(self):
        pytest.importorskip("airflow")
        pytest.importorskip("kubernetes_validate")

    def _pods(self, raw: bytes, file: str) -> list[dict]:
        from dagfactory_s3 import factory

        return [pod for _task, _name, pod in factory.render_pods(manifest.parse(raw, file=file))]

    @pytest.mark.parametrize(
        ("file", "raw"),
        [(p.name, p.read_bytes()) for p in all_examples()] + NEAR_MISSES,
        ids=[p.name for p in all_examples()] + [n for n, _ in NEAR_MISSES],
    )
    def test_valid_manifest_renders_pods_the_rules_accept(self, file, raw):
        """Each example and each near miss validates, and each pod it renders passes the rules and the
        Kubernetes schema (kubernetes-validate, strict)."""
        import kubernetes_validate

        pods = self._pods(raw, file)
        assert pods
        for pod in pods:
            assert k8s.pod_problems(pod) == []
            kubernetes_validate.validate(pod, kubernetes_validate.utils.latest_version(), strict=True)

    def test_pod_rules_find_what_the_manifest_rules_find(self):
        """The pod-side rules are not vacuous: a rendered pod, doctored, is refused at each field."""
        pod = self._pods(NEAR_MISSES[0][1], "m.json")[0]
        bad = copy.deepcopy(pod)
        bad["metadata"]["labels"]["team"] = "data_"
        bad["metadata"]["annotations"] = {"a..b/c": "x"}
        spec = bad["spec"]
        spec["nodeSelector"] = {"/zone": "a"}
        spec["serviceAccountName"] = "sa..x"
        spec["tolerations"] = [{"operator": "Equal", "value": "x"}]
        spec["affinity"] = {
            "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": ""}]}
        }
        container = spec["containers"][0]
        container["image"] = "PP:1"
        container["command"] = ["a\0"]
        container["env"] = [{"name": "1 X", "valueFrom": {"secretKeyRef": {"name": "db..x", "key": ".."}}}]
        container["resources"] = {"requests": {"cpu": "2", "nvidia.com/gpu": "1"}, "limits": {"cpu": "1"}}
        found = {where for where, _reason in k8s.pod_problems(bad)}
        assert found == {
            "/metadata/labels/team",
            "/metadata/annotations/a..b~1c",
            "/spec/nodeSelector/~1zone",
            "/spec/serviceAccountName",
            "/spec/tolerations/0/operator",
            "/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/0/topologyKey",
            "/spec/containers/0/image",
            "/spec/containers/0/command/0",
            "/spec/containers/0/env/0/name",
            "/spec/containers/0/env/0/valueFrom/secretKeyRef/name",
            "/spec/containers/0/env/0/valueFrom/secretKeyRef/key",
            "/spec/containers/0/resources/requests/cpu",
            "/spec/containers/0/resources/limits/nvidia.com~1gpu",
        }
