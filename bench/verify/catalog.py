"""The benchmark shop's catalog: every product derived from its index alone.

The shop, the database loader and the comparison crawlers all rebuild the same products from
``(index, host, port)`` without sharing state. 80% of the pages carry the tag block and a JSON-LD
Product, 15% only JSON-LD, 5% only microdata (no tag, no JSON-LD).
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

FIRST_HOST = "127.0.0.2"
LATENCY_HOST = "127.0.1.2"

_STYLES = ("Crianza", "Reserva", "Gran Reserva", "Roble", "Joven", "Selección", "Barrica")
_REGIONS = (
    "Rioja",
    "Ribera del Duero",
    "Priorat",
    "Rueda",
    "Toro",
    "Somontano",
    "Penedès",
    "Rías Baixas",
    "Valdepeñas",
    "Bierzo",
    "Jumilla",
    "Montsant",
)
_WINERIES = (
    "Bodegas Ejemplo",
    "Viñedos del Norte",
    "Casa Montaña",
    "Hermanos Peña",
    "Pago de la Vega",
    "Cellers Roca",
    "Finca Los Álamos",
    "Bodega Cooperativa San Isidro",
)
_CATEGORIES = (
    ("Vinos tintos", "tintos"),
    ("Vinos blancos", "blancos"),
    ("Rosados", "rosados"),
    ("Espumosos", "espumosos"),
    ("Generosos", "generosos"),
)
_GRAPES = ("Tempranillo", "Garnacha", "Mencía", "Verdejo", "Albariño", "Monastrell", "Cariñena")


class PageKind(enum.Enum):
    """Which product markup a page carries."""

    TAG = "tag"  # cn_product_visited block + JSON-LD Product
    JSONLD = "jsonld"  # JSON-LD Product only
    MICRODATA = "microdata"  # microdata Product only


def host_addresses(count: int) -> list[str]:
    """``count`` loopback addresses from 127.0.0.2 on, each one host of the shop."""
    base = int.from_bytes(bytes(int(p) for p in FIRST_HOST.split(".")), "big")
    return [".".join(str(b) for b in (base + i).to_bytes(4, "big")) for i in range(count)]


def _slugify(text: str) -> str:
    table = str.maketrans("áàèéíïóòúüñç·", "aaeeiioouunc-")
    return "-".join(text.lower().translate(table).replace("-", " ").split())


@dataclass(frozen=True, slots=True)
class BenchProduct:
    """One product of the benchmark shop and everything its page states."""

    index: int
    product_id: str
    host: str
    port: int
    kind: PageKind
    name: str
    slug: str
    category: str
    category_slug: str
    region: str
    brand: str
    grape: str
    price: Decimal
    original_price: Decimal | None
    in_stock: bool
    stock: int
    rating: Decimal
    reviews: int
    image_id: int
    size_target: int
    related: tuple[str, ...]

    @property
    def path(self) -> str:
        """The page's path on its host."""
        return f"/{self.category_slug}/{self.index}-{self.slug}.html"

    @property
    def url(self) -> str:
        """The page's absolute URL."""
        return f"http://{self.host}:{self.port}{self.path}"

    @property
    def origin(self) -> str:
        """Scheme, host and port of the shop that serves this product."""
        return f"http://{self.host}:{self.port}"

    @property
    def price_without_vat(self) -> Decimal:
        """The price before 21% VAT, as the shop computes it."""
        return (self.price / Decimal("1.21")).quantize(Decimal("0.0001"))

    @property
    def discount_percentage(self) -> int:
        """Whole-number discount against the original price (0 when not discounted)."""
        if self.original_price is None:
            return 0
        return round((1 - self.price / self.original_price) * 100)


def product_at(index: int, host: str, port: int, *, prefix: str = "P") -> BenchProduct:
    """The product with this index (pure function of its arguments)."""
    rng = random.Random(index * 7919 + len(prefix))
    slot = index % 20
    kind = PageKind.MICRODATA if slot == 0 else PageKind.JSONLD if slot <= 3 else PageKind.TAG
    region = rng.choice(_REGIONS)
    style = rng.choice(_STYLES)
    year = rng.randint(2012, 2023)
    name = f"{region} {style} {year}"
    category, category_slug = rng.choice(_CATEGORIES)
    price = Decimal(rng.randint(495, 8995)) / 100
    discounted = rng.random() < 0.3
    original = (price * Decimal("1.1")).quantize(Decimal("0.01")) if discounted else None
    return BenchProduct(
        index=index,
        product_id=f"{prefix}{index:07d}",
        host=host,
        port=port,
        kind=kind,
        name=name,
        slug=_slugify(name),
        category=category,
        category_slug=category_slug,
        region=region,
        brand=rng.choice(_WINERIES),
        grape=rng.choice(_GRAPES),
        price=price,
        original_price=original,
        in_stock=rng.random() < 0.9,
        stock=rng.randint(0, 400),
        rating=Decimal(rng.randint(30, 50)) / 10,
        reviews=rng.randint(0, 250),
        image_id=rng.randint(100, 99999),
        size_target=rng.randint(30_000, 60_000),
        related=tuple(f"{prefix}{rng.randint(0, 999_999):07d}" for _ in range(3)),
    )


def catalog(count: int, hosts: list[str], port: int) -> list[BenchProduct]:
    """The throughput catalog: ``count`` products spread round-robin over ``hosts``."""
    return [product_at(i, hosts[i % len(hosts)], port) for i in range(count)]


def tag_data(product: BenchProduct) -> dict[str, Any]:
    """The product object a tag event for this product would carry (before verification)."""
    data: dict[str, Any] = {
        "product_id": product.product_id,
        "url": product.url,
        "name": product.name,
        "unit_price": str(product.price),
        "availability": "in_stock" if product.in_stock else "out_of_stock",
        "brand": product.brand,
        "categories": [
            f"/Inicio/{product.category}",
            f"/Inicio/{product.category}/{product.region}",
        ],
    }
    if product.original_price is not None:
        data["unit_price_original"] = str(product.original_price)
    return data
