"""PrestaShop-like product pages (classic theme layout) for the benchmark shop.

The markup lives in ``templates/*.html`` (``string.Template`` placeholders). A page has the
head (metas, JSON-LD blocks, OpenGraph, the theme's inline ``prestashop`` JS object), header
navigation with a category mega-menu, breadcrumb, the product column (images, prices,
add-to-cart form, description and data-sheet tabs), related product miniatures, the footer and,
for tagged pages, the hidden ``cn_product_visited`` block. Miniatures are added until the page
reaches its size target (30-60 KB).
"""

from __future__ import annotations

import functools
import html
import json
import random
from decimal import Decimal
from pathlib import Path
from string import Template

from bench.verify.catalog import BenchProduct, PageKind
from bench.verify.shop_text import FOOTER_LINKS, JS_PAGES, MENU, SCRIPTS, SENTENCES

_TEMPLATES = Path(__file__).resolve().parent / "templates"


def _template(name: str) -> Template:
    return Template((_TEMPLATES / f"{name}.html").read_text("utf-8"))


_HEAD = _template("head")
_MENU_ITEM = _template("menu_item")
_MENU_SUB_ITEM = _template("menu_sub_item")
_PRODUCT = _template("product")
_MINIATURE = _template("miniature")
_FOOTER = _template("footer")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _slug(text: str) -> str:
    return _e(text.lower().replace(" ", "-"))


def _euros(amount: Decimal) -> str:
    return f"{amount:.2f}".replace(".", ",") + " €"


def _short_description(p: BenchProduct) -> str:
    return SENTENCES[p.index % len(SENTENCES)]


def _image_url(p: BenchProduct) -> str:
    return f"{p.origin}/{p.image_id}-large_default/{p.slug}.jpg"


def jsonld_product(p: BenchProduct) -> dict[str, object]:
    """The page's schema.org Product in JSON-LD form (PrestaShop's product.tpl shape)."""
    availability = "InStock" if p.in_stock else "OutOfStock"
    return {
        "@context": "https://schema.org/",
        "@type": "Product",
        "name": p.name,
        "description": _short_description(p),
        "category": p.category,
        "image": _image_url(p),
        "sku": p.product_id,
        "mpn": p.product_id,
        "brand": {"@type": "Brand", "name": p.brand},
        "aggregateRating": {
            "@type": "AggregateRating",
            "ratingValue": str(p.rating),
            "reviewCount": str(p.reviews),
        },
        "offers": {
            "@type": "Offer",
            "priceCurrency": "EUR",
            "name": p.name,
            "price": str(p.price),
            "url": p.url,
            "priceValidUntil": "2026-12-31",
            "sku": p.product_id,
            "availability": f"https://schema.org/{availability}",
            "seller": {"@type": "Organization", "name": "Vinos del Sur"},
        },
    }


def _jsonld_scripts(p: BenchProduct) -> str:
    o = p.origin
    crumbs = [("Inicio", f"{o}/"), (p.category, f"{o}/10-{p.category_slug}"), (p.name, p.url)]
    blocks: list[dict[str, object]] = [
        {
            "@context": "https://schema.org",
            "@type": "Organization",
            "name": "Vinos del Sur",
            "url": f"{o}/",
            "logo": {"@type": "ImageObject", "url": f"{o}/img/logo-1700000000.jpg"},
        },
        {
            "@context": "https://schema.org",
            "@type": "WebPage",
            "isPartOf": {"@type": "WebSite", "url": f"{o}/", "name": "Vinos del Sur"},
            "name": p.name,
            "url": p.url,
        },
        {
            "@context": "https://schema.org",
            "@type": "BreadcrumbList",
            "itemListElement": [
                {"@type": "ListItem", "position": i + 1, "name": n, "item": u}
                for i, (n, u) in enumerate(crumbs)
            ],
        },
    ]
    if p.kind is not PageKind.MICRODATA:
        blocks.append(jsonld_product(p))
    return "".join(
        '    <script type="application/ld+json">\n'
        f"{json.dumps(block, indent=8, ensure_ascii=False)}\n    </script>\n"
        for block in blocks
    )


def _head(p: BenchProduct, rng: random.Random) -> str:
    o = p.origin
    prestashop = {
        "cart": {"products": [], "products_count": 0},
        "currency": {"id": 1, "name": "Euro", "iso_code": "EUR", "sign": "€"},
        "customer": {"lastname": None, "firstname": None, "is_logged": False},
        "language": {"name": "Español (Spanish)", "iso_code": "es", "locale": "es-ES"},
        "page": {"title": "", "canonical": p.url, "page_name": "product"},
        "urls": {
            "base_url": f"{o}/",
            "current_url": p.url,
            "pages": {name: f"{o}/{name.replace('_', '-')}" for name in JS_PAGES},
        },
        "static_token": f"{rng.getrandbits(128):032x}",
        "token": f"{rng.getrandbits(128):032x}",
    }
    return _HEAD.substitute(
        name=_e(p.name),
        short_description=_e(_short_description(p)),
        url=p.url,
        origin=o,
        host=p.host,
        index=p.index,
        slug=p.slug,
        image_url=_image_url(p),
        price=p.price,
        price_without_vat=p.price_without_vat,
        jsonld_scripts=_jsonld_scripts(p),
        prestashop_js=json.dumps(prestashop),
        menu_items=_menu(o),
    )


@functools.cache
def _menu(o: str) -> str:
    # The same on every page of a host: rendered once per host.
    return "".join(
        _MENU_ITEM.substitute(
            id=n + 10,
            n=n,
            origin=o,
            slug=_slug(title),
            title=_e(title),
            sub_items="".join(
                _MENU_SUB_ITEM.substitute(
                    id=n * 20 + k + 100, origin=o, slug=_slug(sub), title=_e(sub)
                )
                for k, sub in enumerate(subs)
            ),
        )
        for n, (title, subs) in enumerate(MENU)
    )


def _microdata(p: BenchProduct) -> dict[str, str]:
    """Placeholders that carry the microdata Product on microdata-only pages."""
    price = f'<span class="current-price-value" content="{p.price}">{_euros(p.price)}</span>'
    if p.kind is not PageKind.MICRODATA:
        return dict.fromkeys(
            ("item_scope", "url_prop", "microdata_extra", "image_prop", "name_prop"), ""
        ) | {"description_prop": "", "price_block": price}
    availability = "InStock" if p.in_stock else "OutOfStock"
    return {
        "item_scope": ' itemscope itemtype="https://schema.org/Product"',
        "url_prop": ' itemprop="url"',
        "microdata_extra": (
            f'\n    <meta itemprop="sku" content="{p.product_id}">'
            '\n    <div itemprop="brand" itemscope itemtype="https://schema.org/Brand">'
            f'<meta itemprop="name" content="{_e(p.brand)}"></div>'
        ),
        "image_prop": ' itemprop="image"',
        "name_prop": ' itemprop="name"',
        "description_prop": ' itemprop="description"',
        "price_block": (
            '<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">\n'
            f'                <span class="current-price-value" itemprop="price"'
            f' content="{p.price}">{_euros(p.price)}</span>\n'
            '                <meta itemprop="priceCurrency" content="EUR">\n'
            f'                <link itemprop="availability" href="https://schema.org/{availability}">'
            "\n              </div>"
        ),
    }


def _product(p: BenchProduct, rng: random.Random) -> str:
    paragraphs = "\n".join(
        f"<p>{_e(' '.join(rng.sample(SENTENCES, 3)))}</p>" for _ in range(rng.randint(2, 5))
    )
    features = "".join(
        f'                    <dt class="name">{_e(k)}</dt>\n'
        f'                    <dd class="value">{_e(v)}</dd>\n'
        for k, v in (
            ("Denominación", f"DO {p.region}"),
            ("Variedad", f"{p.grape} 90 %, Garnacha 10 %"),
            ("Graduación", f"{rng.randint(120, 150) / 10:.1f} % vol.".replace(".", ",")),
            ("Capacidad", "75 cl"),
            ("Temperatura de servicio", "16-18 ºC"),
            ("Maridaje", "Carnes rojas, asados, quesos curados"),
            ("Alérgenos", "Contiene sulfitos"),
        )
    )
    regular = ""
    flags = '<li class="product-flag new">Nuevo</li>'
    if p.original_price is not None:
        regular = (
            '<div class="product-discount"><span class="regular-price">'
            f"{_euros(p.original_price)}</span></div>"
        )
        flags = f'<li class="product-flag discount">-{p.discount_percentage}%</li>'
    return _PRODUCT.substitute(
        _microdata(p),
        origin=p.origin,
        url=p.url,
        name=_e(p.name),
        index=p.index,
        category=_e(p.category),
        category_slug=p.category_slug,
        image_url=_image_url(p),
        flags=flags,
        regular_price=regular,
        short_description=_e(_short_description(p)),
        token=f"{rng.getrandbits(128):032x}",
        stock_label="En stock" if p.in_stock else "Fuera de stock",
        stock=p.stock,
        paragraphs=paragraphs,
        brand=_e(p.brand),
        brand_slug=_slug(p.brand),
        product_id=p.product_id,
        features=features,
    )


def _miniature(p: BenchProduct, rng: random.Random) -> str:
    other = rng.randint(1, 999_999)
    style = rng.choice(("Roble", "Crianza", "Joven"))
    name = f"{rng.choice(MENU[0][1])} {style} {rng.randint(2015, 2023)}"
    slug = _slug(name)
    return _MINIATURE.substitute(
        id=other,
        origin=p.origin,
        url=f"{p.origin}/{p.category_slug}/{other}-{slug}.html",
        slug=slug,
        name=_e(name),
        price=_euros(Decimal(rng.randint(495, 8995)) / 100),
    )


def tag_block(p: BenchProduct) -> str:
    """The hidden cn_product_visited block, as the PrestaShop module renders it."""
    fields = [
        ("url", p.url),
        ("product_id", p.product_id),
        ("name", p.name),
        ("description", f"<p>{_short_description(p)}</p>"),
        ("image_url", _image_url(p)),
        ("unit_price", f"{p.price:.4f}"),
        ("availability", "instock" if p.in_stock else "outofstock"),
        ("brand", p.brand),
        ("unit_price_without_vat", f"{p.price_without_vat:.4f}"),
    ]
    if p.original_price is not None:
        fields += [
            ("unit_price_original", f"{p.original_price:.4f}"),
            ("discounted_percentage", str(p.discount_percentage)),
            ("discounted_amount", f"{p.original_price - p.price:.4f}"),
        ]
    lists = [
        ("category", f"/Inicio/{p.category}"),
        ("category", f"/Inicio/{p.category}/{p.region}"),
        *(("related_external_product_id", related) for related in p.related),
        ("tag", p.region.lower()),
        ("tag", p.grape.lower()),
    ]
    scalars = "".join(f'<span class="{k}">{_e(v)}</span>\n' for k, v in fields)
    many = "".join(f'    <span class="{k}">{_e(v)}</span>\n' for k, v in lists)
    return f'<div class="cn_product_visited" style="display:none">\n    {scalars}\n{many}</div>\n'


@functools.cache
def _footer_parts(o: str) -> tuple[str, str]:
    links = "".join(
        f'              <li><a id="link-cms-page-{i}-2" class="cms-page-link"'
        f' href="{o}/content/{i}-{_slug(title)}" title="{_e(title)}">{_e(title)}</a></li>\n'
        for i, title in enumerate(FOOTER_LINKS, start=1)
    )
    scripts = "".join(
        f'  <script type="text/javascript" src="{o}/{path}" ></script>\n' for path in SCRIPTS
    )
    return links, scripts


def _footer(p: BenchProduct) -> str:
    links, scripts = _footer_parts(p.origin)
    return _FOOTER.substitute(
        origin=p.origin,
        footer_links=links,
        tag_block=tag_block(p) if p.kind is PageKind.TAG else "",
        scripts=scripts,
    )


def render_page(product: BenchProduct) -> bytes:
    """The product's page as UTF-8 bytes, between 30 and 60 KB."""
    rng = random.Random(product.index * 104_729 + 17)
    parts = [_head(product, rng), _product(product, rng)]
    footer = _footer(product)
    size = sum(len(part.encode()) for part in (*parts, footer))
    while True:
        card = _miniature(product, rng)
        grown = size + len(card.encode())
        if grown > product.size_target and len(parts) > 2:
            break
        parts.append(card)
        size = grown
    parts.append(footer)
    return "".join(parts).encode("utf-8")
