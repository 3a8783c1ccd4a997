# The same deployment as api-deployment.json, with the OCI Terraform provider.
variable "compartment_id" {}
variable "gateway_id" {}
variable "tokenbridge_function_id" {}

resource "oci_apigateway_deployment" "orders" {
  compartment_id = var.compartment_id
  gateway_id     = var.gateway_id
  path_prefix    = "/api"

  specification {
    request_policies {
      authentication {
        type                        = "CUSTOM_AUTHENTICATION"
        function_id                 = var.tokenbridge_function_id
        is_anonymous_access_allowed = false
        parameters                  = { token = "request.headers[Authorization]" }
        cache_key                   = ["token"]
      }
    }

    routes {
      path    = "/orders/{rest*}"
      methods = ["ANY"]

      backend {
        type = "HTTP_BACKEND"
        url  = "https://backend.example.com/orders/$${request.path[rest]}"
      }

      request_policies {
        header_transformations {
          set_headers {
            items {
              name      = "Authorization"
              values    = ["$${request.auth[back_end_token]}"]
              if_exists = "OVERWRITE"
            }
          }
        }
      }
    }
  }
}
