package config

import "strconv"

// auths checks the authentication policies and the routes' use of them
// (issue 22).
func (v *validator) auths() {
	for _, name := range sortedKeys(v.c.Auth) {
		v.errorf("auth."+name, "authentication policies are not supported yet")
	}
	for i, r := range v.c.Routes {
		if r != nil && r.Auth != "" {
			v.fieldf("routes["+strconv.Itoa(i)+"]", "auth", "authentication policies are not supported yet")
		}
	}
}
