-- wrk through an HTTP forward proxy (bench/proxy.sh): wrk connects to the address on its command
-- line (the proxy) and sends absolute-form requests for the URL given after `--`:
--   wrk -s bench/proxy_wrk.lua http://PROXY:PORT/ -- http://192.0.2.10:8080/
-- The request stays static (built once in wrk.init), so wrk's own cost is the same as direct.
function init(args)
   local target = args[1]
   assert(target and target:match("^http://"), "usage: wrk -s proxy_wrk.lua http://PROXY/ -- http://HOST:PORT/PATH")
   wrk.path = target
   wrk.headers["Host"] = target:match("^http://([^/]+)")
end
