# ProberMesh: both binaries in one minimal image.
#   docker build -t probermesh:0.2.0 .
#   docker run --rm -p 6000:6000 -p 6001:6001 probermesh:0.2.0 /probermesh-server -server.rpc.insecure \
#     -server.rpc.listen.addr :6000 -server.http.listen.addr :6001
#   docker run --rm --network host --cap-drop ALL --cap-add NET_RAW probermesh:0.2.0 /probermesh-agent \
#     -region my-region -server.rpc.addr probermesh.example:6000
# Stage 1 builds with Node and npm only (Bun comes from the npm registry); stage 2 holds the two
# self-contained executables on a distroless base with glibc.
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY . .
RUN npx bun run scripts/build.ts

FROM gcr.io/distroless/cc-debian12
COPY --from=build /src/dist/server /probermesh-server
COPY --from=build /src/dist/agent /probermesh-agent
EXPOSE 6000 6001
ENTRYPOINT []
CMD ["/probermesh-server"]
