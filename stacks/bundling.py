"""The CDK side of the Lambda bundles: the shared code asset and the dependency layers as
constructs, filled by CDK's local bundling from the builds in ``stacks.packaging`` (no Docker).

CDK calls the builders only for assets it actually stages; each asset's hash is the build's
own key (sources, lock, recipe and bytecode format), so an unchanged build is never redone.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks.constants import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME
from stacks.packaging.base import REPO_ROOT
from stacks.packaging.code_asset import code_key, stage_code
from stacks.packaging.layers import (
    BASE_LAYER,
    BILLING_LAYER,
    CHAT_LAYER,
    DONE_MARKER,
    LayerSpec,
    build_layer,
    layer_key,
)


@jsii.implements(ILocalBundling)
class LocalBuild:
    """CDK's local-bundling hook: fills the asset's output directory without Docker.

    It never returns False: falling back to Docker would hide a broken local build.
    """

    def __init__(self, fill: Callable[[Path], None]) -> None:
        self._fill = fill

    def try_bundle(self, output_dir: str, *_options: Any, **_keywords: Any) -> bool:
        self._fill(Path(output_dir))
        return True


def _link_or_copy(source: str, destination: str) -> object:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
    return destination


def _copy_layer(spec: LayerSpec) -> Callable[[Path], None]:
    def fill(output: Path) -> None:
        shutil.copytree(
            build_layer(spec),
            output,
            ignore=shutil.ignore_patterns(DONE_MARKER),
            copy_function=_link_or_copy,
            dirs_exist_ok=True,
        )

    return fill


def _bundling(fill: Callable[[Path], None]) -> BundlingOptions:
    # The image is required by the API and used only if local bundling declined; it never does.
    return BundlingOptions(image=LAMBDA_RUNTIME.bundling_image, local=LocalBuild(fill))


class LambdaBundleConstruct(Construct):
    """The shared code asset and the dependency layers every function of a stack uses."""

    def __init__(self, scope: Construct, construct_id: str, *, with_chat_layer: bool) -> None:
        super().__init__(scope, construct_id)
        self.code = self._build_code()
        self.base_layer = self._build_layer(BASE_LAYER, "Runtime dependencies of every function")
        self.chat_layer = (
            self._build_layer(CHAT_LAYER, "The LLM client, for the chat function only")
            if with_chat_layer
            else None
        )
        self.billing_layer = self._build_layer(
            BILLING_LAYER, "The Stripe SDK, for the billing function only"
        )

    def layers_for(self, *, chat: bool, billing: bool = False) -> list[lambda_.ILayerVersion]:
        if billing:
            return [self.base_layer, self.billing_layer]
        if not chat:
            return [self.base_layer]
        if self.chat_layer is None:
            raise ValueError("this bundle was built without the chat layer")
        return [self.base_layer, self.chat_layer]

    def _build_code(self) -> lambda_.Code:
        return lambda_.Code.from_asset(
            str(REPO_ROOT / "lambdas"),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=f"code-{code_key()}",
            bundling=_bundling(stage_code),
        )

    def _build_layer(self, spec: LayerSpec, description: str) -> lambda_.LayerVersion:
        return lambda_.LayerVersion(
            self,
            f"{spec.name.capitalize()}Layer",
            code=lambda_.Code.from_asset(
                str(REPO_ROOT / "lambdas"),
                asset_hash_type=AssetHashType.CUSTOM,
                asset_hash=f"layer-{spec.name}-{layer_key(spec)}",
                bundling=_bundling(_copy_layer(spec)),
            ),
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[LAMBDA_ARCHITECTURE],
            description=description,
        )
