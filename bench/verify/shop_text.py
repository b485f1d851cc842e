"""The benchmark shop's words: menu, footer links, script paths, description sentences."""

from __future__ import annotations

MENU = (
    ("Vinos tintos", ("Rioja", "Ribera del Duero", "Priorat", "Toro", "Bierzo", "Jumilla")),
    ("Vinos blancos", ("Rueda", "Rías Baixas", "Penedès", "Valdepeñas", "Somontano")),
    ("Rosados", ("Navarra", "Cigales", "Rioja", "Somontano")),
    ("Espumosos", ("Cava Brut", "Cava Brut Nature", "Champagne", "Corpinnat")),
    ("Generosos", ("Fino", "Manzanilla", "Amontillado", "Oloroso", "Pedro Ximénez")),
    ("Destilados", ("Brandy", "Orujo", "Ginebra", "Whisky")),
    ("Gourmet", ("Aceites", "Conservas", "Quesos", "Embutidos")),
    ("Regalos", ("Estuches", "Cestas", "Tarjetas regalo")),
)
FOOTER_LINKS = (
    "Envío",
    "Aviso legal",
    "Términos y condiciones",
    "Sobre nosotros",
    "Pago seguro",
    "Contacte con nosotros",
    "Mapa del sitio",
    "Tiendas",
)
JS_PAGES = (
    "address",
    "addresses",
    "authentication",
    "cart",
    "category",
    "cms",
    "contact",
    "discount",
    "guest_tracking",
    "history",
    "identity",
    "index",
    "my_account",
    "order_confirmation",
    "order_detail",
    "order_follow",
    "order",
    "order_return",
    "order_slip",
    "pagenotfound",
    "password",
    "prices_drop",
    "product",
    "search",
    "sitemap",
    "stores",
    "supplier",
    "register",
)
SCRIPTS = (
    "themes/core.js",
    "themes/classic/assets/js/theme.js",
    "modules/ps_emailsubscription/views/js/ps_emailsubscription.js",
    "modules/productcomments/views/js/post-comment.js",
    "modules/ps_searchbar/ps_searchbar.js",
    "modules/ps_shoppingcart/ps_shoppingcart.js",
)
SENTENCES = (
    "Elaborado con uvas de viñedos de más de cuarenta años en suelos arcillo-calcáreos.",
    "Fermentación en depósitos de acero inoxidable a temperatura controlada.",
    "Color rojo cereza con ribete granate y lágrima abundante.",
    "En nariz destacan la fruta roja madura, la vainilla y las especias dulces.",
    "En boca es amplio, sabroso, con taninos pulidos y un final largo y persistente.",
    "Ideal para acompañar carnes rojas, asados, guisos de caza y quesos curados.",
    "Vendimia manual en cajas de quince kilos y doble mesa de selección.",
    "Crianza en barricas de roble francés y americano de grano fino.",
    "Una añada marcada por un invierno lluvioso y un verano cálido y seco.",
    "Servir entre dieciséis y dieciocho grados tras airear unos minutos.",
)
