package emulator

import (
	"net/url"
	"strings"
)

// route is where a request goes: its handler and the endpoint whose rate
// limit it counts against.
type route struct {
	// op names the handler, for example "price.update".
	op string
	// endpoint is the method and route template, ids replaced, for example
	// "POST /v1/prices/{id}": Stripe limits each such endpoint on its own.
	endpoint string
	// id is the object id from the path, if the route has one.
	id string
}

// routeOf names the route of a method and path; ok is false for an unknown
// route, whose endpoint is then the method and the path as they are.
func routeOf(method, escapedPath string) (r route, ok bool) {
	r.endpoint = method + " " + escapedPath
	segs := strings.Split(strings.TrimPrefix(escapedPath, "/"), "/")
	if len(segs) < 2 || len(segs) > 3 || segs[0] != "v1" {
		return r, false
	}
	var resource string
	switch segs[1] {
	case "products":
		resource = "product"
	case "prices":
		resource = "price"
	default:
		return r, false
	}
	template := "/v1/" + segs[1]
	if len(segs) == 3 {
		id, err := url.PathUnescape(segs[2])
		if err != nil || id == "" {
			return r, false
		}
		r.id, template = id, template+"/{id}"
	}
	switch {
	case method == "POST" && r.id == "":
		r.op = resource + ".create"
	case method == "POST":
		r.op = resource + ".update"
	case method == "GET" && r.id == "":
		r.op = resource + ".list"
	case method == "GET":
		r.op = resource + ".get"
	default:
		return r, false
	}
	r.endpoint = method + " " + template
	return r, true
}

// call is one API request being handled, under the emulator's mutex.
type call struct {
	account string
	// id is the object id from the path, if the route has one.
	id   string
	form *form
}

// handle runs one API call against the state and returns the object (or
// list) to render and the id of the object it wrote or read. The caller
// holds e.mu.
func (e *Emulator) handle(op string, c *call) (any, string, *apiError) {
	switch op {
	case "product.create":
		return e.createProduct(c)
	case "product.update":
		return e.updateProduct(c)
	case "product.get":
		return getObject(c, "product", e.account(c.account, false).products)
	case "product.list":
		return e.listProducts(c)
	case "price.create":
		return e.createPrice(c)
	case "price.update":
		return e.updatePrice(c)
	case "price.get":
		return getObject(c, "price", e.account(c.account, false).prices)
	case "price.list":
		return e.listPrices(c)
	}
	panic("stripe emulator: no handler for " + op)
}
