"""Pure translation of EC2 and Price List answers (no AWS, no moto)."""

from __future__ import annotations

import json

from gpuctl.providers.aws.botocore_models import trim_model
from gpuctl.providers.aws.mapping import (
    GpuInstanceType,
    canonical_gpu,
    catalog,
    cheapest_spot,
    gpu_instance_types,
    on_demand_prices,
    price_filters,
)
from tests.providers.aws_fakes import product

GPU_IDS = catalog().gpu_ids


def ec2_type(name: str, gpus: list[tuple[str, int, int]], vcpus: int = 4, ram_mib: int = 16384) -> dict:
    return {"InstanceType": name, "VCpuInfo": {"DefaultVCpus": vcpus}, "MemoryInfo": {"SizeInMiB": ram_mib},
            "GpuInfo": {"Gpus": [{"Name": n, "Manufacturer": "NVIDIA", "Count": c, "MemoryInfo": {"SizeInMiB": m}}
                                 for n, c, m in gpus]}}


def test_gpu_names_are_mapped_by_name_and_memory() -> None:
    assert canonical_gpu("A100", 40960, GPU_IDS) == "A100-40GB-SXM"
    assert canonical_gpu("A100", 81920, GPU_IDS) == "A100-80GB-SXM"
    assert canonical_gpu("H100", 81920, GPU_IDS) == "H100-SXM"
    assert canonical_gpu("L40S", 45776, GPU_IDS) == "L40S"  # a bare name matches any size
    assert canonical_gpu("V100", 16384, GPU_IDS) == "V100-16GB-SXM"
    assert canonical_gpu("V100", 32768, GPU_IDS) == "V100-32GB"  # p3dn
    assert canonical_gpu("Radeon Pro V520", 8192, GPU_IDS) is None


def test_gpu_instance_types_keep_only_mappable_whole_gpus() -> None:
    raw = [
        ec2_type("g6e.12xlarge", [("L40S", 4, 45776)], 48, 393216),
        ec2_type("p4de.24xlarge", [("A100", 8, 81920)], 96, 1179648),
        ec2_type("g6f.large", [("L4", 0, 2861)]),  # a fraction of a GPU
        ec2_type("g4ad.xlarge", [("Radeon Pro V520", 1, 8192)]),  # not mapped
        ec2_type("x9.mixed", [("L4", 1, 22888), ("T4", 1, 16384)]),  # two models
        {"InstanceType": "m7i.large", "VCpuInfo": {"DefaultVCpus": 2}, "MemoryInfo": {"SizeInMiB": 8192}},
    ]
    assert gpu_instance_types(raw, GPU_IDS) == [
        GpuInstanceType("g6e.12xlarge", "L40S", 4, 48, 384.0),
        GpuInstanceType("p4de.24xlarge", "A100-80GB-SXM", 8, 96, 1152.0),
    ]


def test_on_demand_prices_read_the_terms_of_json_strings() -> None:
    entries = [json.dumps(product("g6e.xlarge", "us-east-1", 1.861)), product("p5.48xlarge", "us-east-1", 55.04)]
    assert on_demand_prices(entries) == {"g6e.xlarge": 1.861, "p5.48xlarge": 55.04}


def test_on_demand_prices_ignore_zero_other_markets_and_take_the_lowest() -> None:
    entries = [
        product("p5.48xlarge", "us-east-1", 55.04),
        product("p5.48xlarge", "us-east-1", 31.46, marketoption="CapacityBlock"),
        product("g5.xlarge", "us-east-1", 0.0),
        product("g6.xlarge", "us-east-1", 0.9),
        product("g6.xlarge", "us-east-1", 0.8048),
        {"product": {"attributes": {}}, "terms": {}},
    ]
    assert on_demand_prices(entries) == {"p5.48xlarge": 55.04, "g6.xlarge": 0.8048}


def test_cheapest_spot_is_the_minimum_over_zones() -> None:
    history = [
        {"InstanceType": "g5.xlarge", "AvailabilityZone": "us-east-1a", "SpotPrice": "0.4512"},
        {"InstanceType": "g5.xlarge", "AvailabilityZone": "us-east-1b", "SpotPrice": "0.3920"},
        {"InstanceType": "p5.48xlarge", "AvailabilityZone": "us-east-1a", "SpotPrice": "not a number"},
    ]
    assert cheapest_spot(history) == {"g5.xlarge": 0.392}


def test_price_filters_use_the_location_name_or_region_code() -> None:
    fields = {f["Field"]: f["Value"] for f in price_filters("us-west-2")}
    assert fields == {"instanceFamily": "GPU instance", "location": "US West (Oregon)", "operatingSystem": "Linux",
                      "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}
    assert {f["Field"]: f["Value"] for f in price_filters("ap-east-2")}["regionCode"] == "ap-east-2"
    assert {f["Type"] for f in price_filters("us-east-1")} == {"TERM_MATCH"}


def test_trim_model_keeps_the_operations_and_every_shape_they_reach() -> None:
    model = {
        "version": "2.0", "metadata": {"apiVersion": "2016-11-15"}, "documentation": "EC2",
        "operations": {
            "Keep": {"name": "Keep", "input": {"shape": "In"}, "output": {"shape": "Out"},
                     "errors": [{"shape": "Oops"}], "documentation": "docs"},
            "Drop": {"name": "Drop", "input": {"shape": "Unused"}},
        },
        "shapes": {
            "In": {"type": "structure", "members": {"Ids": {"shape": "IdList", "documentation": "d"}}},
            "IdList": {"type": "list", "member": {"shape": "Id"}},
            "Id": {"type": "string"},
            "Out": {"type": "structure", "members": {"Tags": {"shape": "TagMap"}}},
            "TagMap": {"type": "map", "key": {"shape": "Id"}, "value": {"shape": "Count"}},
            "Count": {"type": "integer"},
            "Oops": {"type": "structure", "members": {}},
            "Unused": {"type": "string"},
        },
    }
    assert trim_model(model, ["Keep"]) == {
        "version": "2.0", "metadata": {"apiVersion": "2016-11-15"},
        "operations": {"Keep": {"name": "Keep", "input": {"shape": "In"}, "output": {"shape": "Out"},
                                "errors": [{"shape": "Oops"}]}},
        "shapes": {
            "Count": {"type": "integer"}, "Id": {"type": "string"},
            "IdList": {"type": "list", "member": {"shape": "Id"}},
            "In": {"type": "structure", "members": {"Ids": {"shape": "IdList"}}},
            "Oops": {"type": "structure", "members": {}},
            "Out": {"type": "structure", "members": {"Tags": {"shape": "TagMap"}}},
            "TagMap": {"type": "map", "key": {"shape": "Id"}, "value": {"shape": "Count"}},
        },
    }
