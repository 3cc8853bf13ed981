// Command gateway stands in for a Gateway API implementation (Envoy) in front of an InferencePool:
// for each HTTP request it asks the endpoint picker over ext_proc, as Envoy's ext_proc filter does in
// full-duplex streamed mode, which endpoint should serve it, then sends the body the picker returned
// to that endpoint and relays the answer. The chosen endpoint is echoed in X-Picked-Endpoint so a
// test can tell where the request went. Only the request path goes through the picker.
//
//	gateway --listen 127.0.0.1:8081 --picker 127.0.0.1:9002
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// destinationHeader is where the picker names the endpoint (host:port, or a comma list of them).
const destinationHeader = "x-gateway-destination-endpoint"

type gateway struct {
	picker extprocv3.ExternalProcessorClient
	client *http.Client
}

// pick runs one ext_proc exchange: headers, then the whole body; it returns the endpoint and the
// body to send there, or the picker's immediate response as an error status.
func (g *gateway) pick(ctx context.Context, r *http.Request, body []byte) (string, []byte, int, error) {
	stream, err := g.picker.Process(ctx)
	if err != nil {
		return "", nil, http.StatusBadGateway, fmt.Errorf("ext_proc stream: %w", err)
	}
	headers := []*corev3.HeaderValue{
		{Key: ":method", RawValue: []byte(r.Method)},
		{Key: ":path", RawValue: []byte(r.URL.RequestURI())},
		{Key: ":authority", RawValue: []byte(r.Host)},
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			headers = append(headers, &corev3.HeaderValue{Key: strings.ToLower(k), RawValue: []byte(v)})
		}
	}
	msgs := []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: headers},
		}}},
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{
			Body: body, EndOfStream: true,
		}}},
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			return "", nil, http.StatusBadGateway, fmt.Errorf("ext_proc send: %w", err)
		}
	}
	endpoint, out := "", []byte(nil)
	for {
		resp, err := stream.Recv()
		if err != nil {
			return "", nil, http.StatusBadGateway, fmt.Errorf("ext_proc receive: %w", err)
		}
		if imm := resp.GetImmediateResponse(); imm != nil {
			code := int(imm.GetStatus().GetCode())
			return "", nil, code, fmt.Errorf("picker answered %d: %s", code, imm.GetBody())
		}
		if h := resp.GetRequestHeaders(); h != nil {
			for _, set := range h.GetResponse().GetHeaderMutation().GetSetHeaders() {
				if strings.EqualFold(set.GetHeader().GetKey(), destinationHeader) {
					endpoint = string(set.GetHeader().GetRawValue())
				}
			}
		}
		if b := resp.GetRequestBody(); b != nil {
			mutation := b.GetResponse().GetBodyMutation()
			if streamed := mutation.GetStreamedResponse(); streamed != nil {
				out = append(out, streamed.GetBody()...)
				if !streamed.GetEndOfStream() {
					continue
				}
			} else if whole := mutation.GetBody(); whole != nil {
				out = whole
			} else {
				out = body
			}
			_ = stream.CloseSend()
			if endpoint == "" {
				return "", nil, http.StatusBadGateway, errors.New("the picker named no endpoint")
			}
			return strings.Split(endpoint, ",")[0], out, 0, nil
		}
	}
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	endpoint, out, code, err := g.pick(ctx, r, body)
	if err != nil {
		log.Printf("%s %s: %v", r.Method, r.URL.Path, err)
		http.Error(w, err.Error(), code)
		return
	}
	up, err := http.NewRequestWithContext(ctx, r.Method, "http://"+endpoint+r.URL.RequestURI(), bytes.NewReader(out))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	up.Header = r.Header.Clone()
	resp, err := g.client.Do(up)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.Header().Set("X-Picked-Endpoint", endpoint)
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
	log.Printf("%s %s -> %s: %d", r.Method, r.URL.Path, endpoint, resp.StatusCode)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve HTTP on")
	picker := flag.String("picker", "127.0.0.1:9002", "the endpoint picker's ext_proc gRPC address (plaintext)")
	flag.Parse()
	conn, err := grpc.NewClient(*picker, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatalf("picker %s: %v", *picker, err)
	}
	g := &gateway{picker: extprocv3.NewExternalProcessorClient(conn), client: &http.Client{Timeout: 30 * time.Second}}
	log.Printf("serving on %s, picking through %s", *listen, *picker)
	log.Fatal(http.ListenAndServe(*listen, g))
}
