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
from gpuctl.providers.skips import recording
from tests.providers.aws_fakes import product

GPU_IDS = catalog().gpu_ids


def ec2_type(name: str, gpus: list[tuple[str, int, int]], vcpus: int = 4, ram_mib: int = 16384) -> dict:
    return {"InstanceType": name, "VCpuInfo": {"DefaultVCpus": vcpus}, "MemoryInfo": {"SizeInMiB": ram_mib},
            "GpuInfo": {"Gpus": [{"Name": n, "Manufacturer": "NVIDIA", "Count": c, "MemoryInfo": {"SizeInMiB": m}}
                                 for n, c, m in gpus], "TotalGpuMemoryInMiB": sum(c * m for _n, c, m in gpus)}}


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
    with recording() as skips:
        found = gpu_instance_types(raw, catalog())
    assert found == [
        GpuInstanceType("g6e.12xlarge", "L40S", 4, 48, 384.0),
        GpuInstanceType("p4de.24xlarge", "A100-80GB-SXM", 8, 96, 1152.0),
    ]
    assert {(s.reason.split(":")[0], tuple(s.entries)) for s in skips.summary()} == {
        ("fractional GPU (Count 0, GpuPartitionSize None)", ("g6f.large",)),
        ("left out on purpose", ("g4ad.xlarge",)),
        ("mixes GPU models", ("x9.mixed",)),
        ("no GPU", ("m7i.large",)),
    }


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


# g6f.large as DescribeInstanceTypes answers it (recorded in moto 5.2.6's
# moto/ec2/resources/instance_types.json.gz; botocore 1.44.18's GpuDeviceInfo has GpuPartitionSize and
# LogicalGpuCount): an eighth of an L4, counted as 0 GPUs, with the slice's own memory.
G6F_LARGE = {
    "InstanceType": "g6f.large", "VCpuInfo": {"DefaultVCpus": 2}, "MemoryInfo": {"SizeInMiB": 8192},
    "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
    "GpuInfo": {"Gpus": [{"Count": 0, "GpuPartitionSize": 0.125, "LogicalGpuCount": 1, "Manufacturer": "NVIDIA",
                          "MemoryInfo": {"SizeInMiB": 2861}, "Name": "L4", "Workloads": ["graphics", "ml-ai"]}],
                "TotalGpuMemoryInMiB": 2861},
}


def test_a_fractional_gpu_is_never_offered_as_the_whole_gpu() -> None:
    with recording() as skips:
        assert gpu_instance_types([G6F_LARGE], catalog()) == []
    assert [s.reason for s in skips.summary()] == [
        "fractional GPU (Count 0, GpuPartitionSize 0.125): a slice of one L4 is not the GPU its datasheet describes"]


def test_a_slice_counted_as_one_gpu_is_caught_by_its_memory() -> None:
    # were EC2 to count the slice as one GPU and drop GpuPartitionSize, the memory per GPU still gives it away
    gpu = {**G6F_LARGE["GpuInfo"]["Gpus"][0], "Count": 1}
    del gpu["GpuPartitionSize"]
    slice_as_one = {**G6F_LARGE, "GpuInfo": {"Gpus": [gpu], "TotalGpuMemoryInMiB": 2861}}
    with recording() as skips:
        assert gpu_instance_types([slice_as_one], catalog()) == []
    assert [s.reason for s in skips.summary()] == [
        "3.0 GB per GPU (TotalGpuMemoryInMiB / Count), where one L4 has 24 GB: not a whole L4"]


def test_whole_gpus_pass_the_memory_cross_check_in_gib_or_gb() -> None:
    raw = [ec2_type("g6.xlarge", [("L4", 1, 22888)]), ec2_type("p5.48xlarge", [("H100", 8, 81920)]),
           ec2_type("p6-b200.48xlarge", [("B200", 8, 183359)]), ec2_type("p5e.48xlarge", [("H200", 8, 144384)])]
    assert [t.gpu for t in gpu_instance_types(raw, catalog())] == ["L4", "H100-SXM", "B200", "H200"]


def test_price_list_entries_that_cannot_be_read_are_counted() -> None:
    broken = product("g6.xlarge", "us-east-1", 0.8)
    dimension = next(iter(next(iter(broken["terms"]["OnDemand"].values()))["priceDimensions"].values()))
    dimension["pricePerUnit"]["USD"] = "n/a"
    with recording() as skips:
        prices = on_demand_prices(["{not json", broken, product("g5.xlarge", "us-east-1", 1.006)])
    assert prices == {"g5.xlarge": 1.006}
    assert {(s.reason, tuple(s.entries)) for s in skips.summary()} == {
        ("invalid entry: field '(entry)': not JSON", ("price list #0",)),
        ("invalid entry: field 'pricePerUnit.USD': 'n/a' is not a number", ("g6.xlarge",)),
    }
