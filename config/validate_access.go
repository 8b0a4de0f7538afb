package config

import "strconv"

// access checks IP lists, CORS policies and the PROXY protocol (issue 22).
func (v *validator) access() {
	for _, name := range sortedKeys(v.c.Listeners) {
		if l := v.c.Listeners[name]; l != nil && l.ProxyProtocol != nil {
			v.fieldf("listeners."+name, "proxy_protocol", "the PROXY protocol is not supported yet")
		}
	}
	for _, name := range sortedKeys(v.c.CORS) {
		v.errorf("cors."+name, "CORS policies are not supported yet")
	}
	for i, r := range v.c.Routes {
		if r == nil {
			continue
		}
		p := "routes[" + strconv.Itoa(i) + "]"
		if len(r.Allow) > 0 {
			v.fieldf(p, "allow", "IP lists are not supported yet")
		}
		if len(r.Deny) > 0 {
			v.fieldf(p, "deny", "IP lists are not supported yet")
		}
		if r.CORS != "" {
			v.fieldf(p, "cors", "CORS policies are not supported yet")
		}
	}
}
