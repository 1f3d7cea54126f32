"""What a layer emitter receives and returns, and how it is registered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from fkhw.model.ir import TensorSpec


@dataclass(frozen=True)
class Bus:
    """A tensor on a packed bus: element k at [k*width +: width]."""

    name: str
    spec: TensorSpec
    width: int
    signed: bool

    @property
    def n(self) -> int:
        return self.spec.size

    @property
    def bits(self) -> int:
        return self.n * self.width


@dataclass(frozen=True)
class LayerIn:
    """One layer to emit: the IR layer, its Verilog identifier, the bus it
    reads, and its output's spec and element format (fkhw.model.stages)."""

    layer: object
    name: str
    x: Bus
    spec_out: TensorSpec
    width: int
    signed: bool

    @property
    def spec_in(self) -> TensorSpec:
        return self.x.spec

    def out(self, suffix: str) -> Bus:
        """The layer's output bus, ``<layer>_<suffix>``."""
        return Bus(f"{self.name}_{suffix}", self.spec_out, self.width, self.signed)

    def decl(self, out: Bus, what: str) -> str:
        """The output wire's declaration with a comment saying what it carries."""
        return f"    wire [{out.bits - 1}:0] {out.name};  // {self.layer.name}: {what}"


@dataclass(frozen=True)
class LayerCode:
    """An emitter's result: the output bus, its declaration, the instance
    (or assignment) in the datapath, and the layer's entry in meta["layers"]."""

    out: Bus
    decl: str
    body: str
    meta: dict


@dataclass(frozen=True)
class LayerKind:
    """A layer kind the generator knows: ``emit`` writes its wiring,
    ``describe`` its line in the file header (from its meta entry);
    ``templates``: hand-written blocks shipped only in designs that hold a
    layer of this kind."""

    emit: Callable[[LayerIn], LayerCode]
    describe: Callable[[dict], str]
    templates: tuple = ()


def instance(comment: str, module: str, params: str, name: str, ports: str) -> str:
    """A commented instance of a hand-written block (``params`` and
    ``ports`` are the text inside ``#( )`` and ``( )``)."""
    return (f"    // {comment}\n"
            f"    {module} #(\n"
            f"        {params}\n"
            f"    ) {name} (\n"
            f"        {ports}\n    );\n")
