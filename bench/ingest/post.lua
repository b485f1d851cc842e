-- wrk script: POST realistic tag events with varying product ids to the ingest listener.
-- usage: wrk -s post.lua URL -- single|batch [catalog_size] [change_rate]
--   single: one product object per request; batch: an array of 100 products per request.
--   Product ids are drawn from catalog_size ids (default 100000). An event repeats the
--   product's usual data, or with probability change_rate (default 0.1) carries a new price,
--   as a storefront does when most visits see unchanged products.

local mode = "single"
local catalog = 100000
local change_rate = 0.1
local pool = {}
local POOL_SIZE = 50000

local function product(n)
  local cents = 1000 + (n * 7919) % 9000
  if math.random() < change_rate then
    cents = math.random(100, 99999)
  end
  return string.format(
    '{"product_id":"sku-%d","url":"https://shop.example/p/sku-%d",' ..
    '"name":"Forged steel anvil, model %d","unit_price":"%d.%02d","unit_price_original":"%d.99",' ..
    '"availability":"InStock","brand":"ACME","currency":"EUR",' ..
    '"description":"A sturdy anvil for every workshop, forged from one piece of steel.",' ..
    '"image_url":"https://cdn.shop.example/img/%d.jpg",' ..
    '"categories":["/Tools/Anvils","/Workshop/Metal"],"tags":["steel","forged"],' ..
    '"rating_value":4.5,"rating_count":%d}',
    n, n, n, math.floor(cents / 100), cents % 100, 20 + n % 90, n, n % 500)
end

function init(args)
  mode = args[1] or "single"
  catalog = tonumber(args[2] or catalog)
  change_rate = tonumber(args[3] or change_rate)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  if mode == "batch" then
    -- Batches are assembled from pre-built objects: formatting 100 objects per request
    -- would make wrk, not the server, the bottleneck.
    for i = 1, POOL_SIZE do
      pool[i] = product(math.random(catalog))
    end
  end
end

function request()
  local body
  if mode == "batch" then
    local items = {}
    for i = 1, 100 do
      items[i] = pool[math.random(POOL_SIZE)]
    end
    body = "[" .. table.concat(items, ",") .. "]"
  else
    body = product(math.random(catalog))
  end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
